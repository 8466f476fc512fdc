import { connect, createServer, type AddressInfo, type Socket } from 'node:net';

/** A TCP proxy in front of a port, able to make its open connections go silent: a dead peer that never says so. */
export interface TcpProxy {
  port: number;
  /**
   * From now on, bytes on the connections open at this moment are dropped in both directions and nothing is closed:
   * what a client sees when a NAT forgets its flow or a failed-over primary vanishes. New connections pass.
   */
  freezeOpenConnections(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  const open = new Set<Socket>();
  const frozen = new WeakSet<Socket>();
  const server = createServer((downstream) => {
    const upstream = connect(targetPort, '127.0.0.1');
    for (const [from, to] of [[downstream, upstream], [upstream, downstream]] as const) {
      open.add(from);
      from.on('data', (chunk) => {
        if (!frozen.has(from)) to.write(chunk);
      });
      from.on('close', () => {
        open.delete(from);
        if (!frozen.has(from)) to.destroy();
      });
      from.on('error', () => {});
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    freezeOpenConnections: () => {
      for (const socket of open) frozen.add(socket);
    },
    close: async () => {
      for (const socket of open) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
