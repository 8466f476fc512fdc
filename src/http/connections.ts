import type { CloseReason } from '../hub/client.js';
import type { Logger } from '../logger.js';
import type { Metrics, Transport } from './metrics.js';

export interface ConnectionLimits {
  /** Streams (SSE and WebSocket) the server holds at once; 0: no limit. */
  maxClients: number;
  /** Streams one client address may hold at once; 0: no limit. */
  maxClientsPerIp: number;
}

/** Why a connection is not let in, and the HTTP status that says so. */
export interface Refusal {
  status: number;
  reason: 'max-clients' | 'max-clients-per-ip';
  message: string;
  retryAfterSeconds: number;
}

/** An admitted stream, until it closes. */
export interface OpenConnection {
  readonly transport: Transport;
  readonly ip: string;
  readonly openedAt: number;
}

/** Counts open streams, in all and per address, lets them in or refuses them, and logs and counts each one. */
export class Connections {
  private readonly limits: ConnectionLimits;
  private readonly metrics: Metrics;
  private readonly logger: Logger;
  private total = 0;
  private readonly perIp = new Map<string, number>();

  constructor(limits: ConnectionLimits, metrics: Metrics, logger: Logger) {
    this.limits = limits;
    this.metrics = metrics;
    this.logger = logger;
  }

  get count(): number {
    return this.total;
  }

  /** A refusal when a limit is reached, else undefined. */
  admit(transport: Transport, ip: string): Refusal | undefined {
    const { maxClients, maxClientsPerIp } = this.limits;
    let refusal: Refusal | undefined;
    if (maxClients > 0 && this.total >= maxClients) {
      refusal = { status: 503, reason: 'max-clients', message: `server is at its limit of ${maxClients} clients: retry later`, retryAfterSeconds: 5 };
    } else if (maxClientsPerIp > 0 && (this.perIp.get(ip) ?? 0) >= maxClientsPerIp) {
      refusal = { status: 429, reason: 'max-clients-per-ip', message: `too many streams from ${ip} (limit ${maxClientsPerIp}): close some and retry`, retryAfterSeconds: 5 };
    }
    if (refusal) this.refused(transport, ip, refusal.reason);
    return refusal;
  }

  refused(transport: Transport, ip: string, reason: string): void {
    this.metrics.connectionRefused(transport, reason);
    this.logger.debug(`refused ${transport} stream`, { ip, reason });
  }

  opened(transport: Transport, ip: string, cursor: number | undefined): OpenConnection {
    this.total++;
    this.perIp.set(ip, (this.perIp.get(ip) ?? 0) + 1);
    this.metrics.connectionOpened(transport);
    this.logger.debug(`opened ${transport} stream`, { ip, cursor: cursor ?? 'none' });
    return { transport, ip, openedAt: Date.now() };
  }

  closed(connection: OpenConnection, reason: CloseReason): void {
    this.total--;
    const left = (this.perIp.get(connection.ip) ?? 1) - 1;
    if (left > 0) this.perIp.set(connection.ip, left);
    else this.perIp.delete(connection.ip);
    this.metrics.connectionClosed(connection.transport, reason);
    this.logger.debug(`closed ${connection.transport} stream`, { ip: connection.ip, reason, seconds: (Date.now() - connection.openedAt) / 1000 });
  }
}
