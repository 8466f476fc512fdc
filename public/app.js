// The demo page: rows of the table, live, as text (never as HTML). Every tab of this browser shares one connection
// (see sqlite-sse-client.js); `?mode=leader` or `?mode=direct` forces the Web Locks or the one-EventSource-per-tab path.
import { subscribe } from './sqlite-sse-client.js';

const MAX_ROWS_SHOWN = 1000;
const ROLES = { 'shared-worker': 'shared worker', direct: 'own connection' };

const statusEl = document.getElementById('status');
const roleEl = document.getElementById('role');
const countEl = document.getElementById('count');
const lastIdEl = document.getElementById('last-id');
const columnsEl = document.getElementById('columns');
const rowsEl = document.getElementById('rows');
const noticeEl = document.getElementById('notice');

let columns = [];
let count = 0;

function ensureColumns(row) {
  const names = Object.keys(row);
  if (names.join('\u0000') === columns.join('\u0000')) return;
  columns = names;
  columnsEl.replaceChildren(...names.map((name) => {
    const th = document.createElement('th');
    th.textContent = name;
    return th;
  }));
}

function show(row, id) {
  ensureColumns(row);
  const tr = document.createElement('tr');
  tr.className = 'new';
  tr.dataset.id = String(id);
  for (const name of columns) {
    const td = document.createElement('td');
    const value = row[name];
    // textContent, never innerHTML: a row cannot inject markup or script.
    td.textContent = value === null || value === undefined ? 'NULL' : typeof value === 'string' ? value : JSON.stringify(value);
    tr.append(td);
  }
  rowsEl.prepend(tr);
  while (rowsEl.childElementCount > MAX_ROWS_SHOWN) rowsEl.lastElementChild.remove();
  count += 1;
  countEl.textContent = String(count);
  lastIdEl.textContent = String(id);
}

function showStatus(status) {
  // data-since: when this state began (tests read it to time a leader takeover).
  if (statusEl.dataset.state !== status.state || roleEl.dataset.leader !== String(status.leader)) statusEl.dataset.since = String(Date.now());
  statusEl.textContent = status.state;
  statusEl.dataset.state = status.state;
  const role = status.mode === 'leader' ? (status.leader ? 'leader tab' : 'follower tab') : ROLES[status.mode];
  roleEl.textContent = role;
  roleEl.dataset.mode = status.mode;
  roleEl.dataset.leader = String(status.leader);
}

function showReset(info) {
  // The database was replaced by one with fewer rows: the ids that follow restart after info.lastId.
  noticeEl.textContent = `The database was replaced: rows continue after id ${info.lastId} (this page had seen ${info.lastEventId}).`;
  noticeEl.hidden = false;
}

const mode = new URLSearchParams(location.search).get('mode') ?? 'auto';
subscribe('/events', { mode, onRow: show, onStatus: showStatus, onReset: showReset });
