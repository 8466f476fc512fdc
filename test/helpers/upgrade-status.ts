import { connect } from 'node:net';
import { withTimeout } from './wait.js';

/** A WebSocket upgrade on a bare socket, with extra headers: the status line of the answer. */
export function upgradeStatus(port: number, headers: Record<string, string> = {}): Promise<string> {
  return withTimeout(
    new Promise((resolve, reject) => {
      const socket = connect({ port, host: '127.0.0.1' });
      let answer = '';
      socket.on('data', (chunk) => {
        answer += chunk.toString('latin1');
        if (answer.includes('\r\n')) {
          resolve(answer.split('\r\n')[0]);
          socket.destroy();
        }
      });
      socket.on('error', reject);
      const extra = Object.entries(headers)
        .map(([name, value]) => `${name}: ${value}\r\n`)
        .join('');
      socket.write(
        `GET /ws HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`,
      );
    }),
    5000,
    'a WebSocket upgrade',
  );
}
