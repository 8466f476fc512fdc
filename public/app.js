// The demo page: one EventSource on /events, each row shown as text (never as HTML).
const MAX_ROWS_SHOWN = 500;

const statusEl = document.getElementById('status');
const countEl = document.getElementById('count');
const lastIdEl = document.getElementById('last-id');
const columnsEl = document.getElementById('columns');
const rowsEl = document.getElementById('rows');

let columns = [];
let count = 0;
let lastId = -1;

function setStatus(state) {
  statusEl.textContent = state;
  statusEl.dataset.state = state;
}

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

function show(id, row) {
  ensureColumns(row);
  const tr = document.createElement('tr');
  tr.className = 'new';
  tr.dataset.id = String(id);
  for (const name of columns) {
    const td = document.createElement('td');
    const value = row[name];
    // textContent, never innerHTML: a row cannot inject markup or script.
    td.textContent = value === null ? 'NULL' : typeof value === 'string' ? value : JSON.stringify(value);
    tr.append(td);
  }
  rowsEl.prepend(tr);
  while (rowsEl.childElementCount > MAX_ROWS_SHOWN) rowsEl.lastElementChild.remove();
  count += 1;
  lastId = id;
  countEl.textContent = String(count);
  lastIdEl.textContent = String(id);
}

const source = new EventSource('/events');
source.onopen = () => setStatus('live');
source.onerror = () => setStatus(source.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting');
source.onmessage = (event) => {
  const id = Number(event.lastEventId);
  if (id <= lastId) return; // already shown (defensive: the server sends each row once)
  show(id, JSON.parse(event.data));
};
source.addEventListener('reset', (event) => {
  // The database was replaced by one with fewer rows: later rows reuse ids we have seen.
  lastId = JSON.parse(event.data).lastId;
});
