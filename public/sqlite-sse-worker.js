// The SharedWorker of sqlite-sse-client.js: one EventSource for every tab of this origin that subscribes to the same
// stream. Tabs talk to it through their MessagePort: `sync-request` to join, `bye` to leave. Rows and status go to
// every port; the connection closes when the last tab leaves.
import { Hub } from './sqlite-sse-client.js';

const ports = new Set();
let hub = null;

function broadcast(message) {
  for (const port of ports) port.postMessage(message);
}

function onPortMessage(event) {
  const port = event.target;
  const message = event.data;
  if (message.t === 'sync-request') {
    ports.add(port);
    if (!hub) {
      // The first tab's cursor, if it has one, is where the shared stream starts.
      hub = new Hub(message.config, { epoch: 0, lastId: message.after ? message.after.id : null, buffer: [] }, broadcast);
      hub.open();
    }
    port.postMessage({ t: 'sync', to: message.from, ...hub.sync(message.after) });
  } else if (message.t === 'bye') {
    ports.delete(port);
    port.close();
    if (ports.size === 0 && hub) {
      hub.close();
      hub = null;
    }
  }
}

self.onconnect = (event) => {
  const port = event.ports[0];
  port.onmessage = onPortMessage;
  port.start();
};
