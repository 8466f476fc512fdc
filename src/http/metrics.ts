import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Hub } from '../hub/hub.js';
import type { CloseReason, TransportCounters } from '../hub/client.js';

export type Transport = 'sse' | 'ws';

const LATENCY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/**
 * Prometheus metrics (prom-client formats them). Hot paths bump plain counters (the hub's, each
 * transport's); those are copied into the registry only when `/metrics` is scraped.
 */
export class Metrics {
  readonly registry = new Registry();
  /** Frames and bytes written, per transport: the clients add to these. */
  readonly transports: Record<Transport, TransportCounters> = { sse: { frames: 0, bytes: 0 }, ws: { frames: 0, bytes: 0 } };
  private readonly clients: Gauge<'transport'>;
  private readonly opened: Counter<'transport'>;
  private readonly closed: Counter<'transport' | 'reason'>;
  private readonly refused: Counter<'transport' | 'reason'>;

  constructor(hubs: readonly Hub[], enabled: boolean) {
    const registry = this.registry;
    const prefix = 'sqlite_sse_';
    this.clients = new Gauge({ name: prefix + 'clients', help: 'Connected clients by transport', labelNames: ['transport'], registers: [registry] });
    this.opened = new Counter({ name: prefix + 'connections_opened_total', help: 'Streams opened', labelNames: ['transport'], registers: [registry] });
    this.closed = new Counter({
      name: prefix + 'connections_closed_total',
      help: 'Streams closed, by reason: client-left, too-slow, bad-cursor, shutdown',
      labelNames: ['transport', 'reason'],
      registers: [registry],
    });
    this.refused = new Counter({
      name: prefix + 'connections_refused_total',
      help: 'Connections refused before streaming: bad-cursor, max-clients, max-clients-per-ip, unauthorized, origin',
      labelNames: ['transport', 'reason'],
      registers: [registry],
    });
    for (const transport of ['sse', 'ws'] as const) {
      this.clients.set({ transport }, 0);
      this.opened.inc({ transport }, 0);
    }
    const transports = this.transports;
    const sum = (field: keyof Hub['counters']) => hubs.reduce((total, hub) => total + hub.counters[field], 0);
    new Counter({
      name: prefix + 'rows_read_total',
      help: 'Rows read from the database by the live read loop (once each, whatever the number of clients)',
      registers: [registry],
      collect() {
        this.reset();
        this.inc(sum('rowsRead'));
      },
    });
    new Counter({
      name: prefix + 'frames_written_total',
      help: 'Row frames written to clients, by transport',
      labelNames: ['transport'],
      registers: [registry],
      collect() {
        this.reset();
        for (const transport of ['sse', 'ws'] as const) this.inc({ transport }, transports[transport].frames);
      },
    });
    new Counter({
      name: prefix + 'bytes_written_total',
      help: 'Row frame bytes written to clients, by transport',
      labelNames: ['transport'],
      registers: [registry],
      collect() {
        this.reset();
        for (const transport of ['sse', 'ws'] as const) this.inc({ transport }, transports[transport].bytes);
      },
    });
    new Counter({
      name: prefix + 'replays_total',
      help: 'Clients that resumed from a cursor, by where their missed rows came from: memory or database',
      labelNames: ['source'],
      registers: [registry],
      collect() {
        this.reset();
        this.inc({ source: 'memory' }, sum('replaysFromMemory'));
        this.inc({ source: 'database' }, sum('replaysFromDatabase'));
      },
    });
    new Counter({
      name: prefix + 'replay_rows_from_database_total',
      help: 'Rows read from the database to catch resuming clients up',
      registers: [registry],
      collect() {
        this.reset();
        this.inc(sum('rowsFromDatabase'));
      },
    });
    new Gauge({
      name: prefix + 'ring_rows',
      help: 'Rows held in memory for resuming clients',
      registers: [registry],
      collect() {
        this.set(hubs.reduce((total, hub) => total + hub.stats().ringRows, 0));
      },
    });
    new Gauge({
      name: prefix + 'ring_bytes',
      help: 'Bytes held in memory for resuming clients',
      registers: [registry],
      collect() {
        this.set(hubs.reduce((total, hub) => total + hub.stats().ringBytes, 0));
      },
    });
    new Gauge({
      name: prefix + 'last_id',
      help: 'Highest id read (of the first stream)',
      registers: [registry],
      collect() {
        this.set(hubs[0].lastId);
      },
    });
    const readLatency = new Histogram({
      name: prefix + 'read_latency_seconds',
      help: 'From the file event (doorbell) to the new rows in memory',
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    });
    const fanoutLatency = new Histogram({
      name: prefix + 'fanout_latency_seconds',
      help: 'Writing one batch of rows to every live client',
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    });
    if (!enabled) return;
    for (const hub of hubs) {
      hub.on('read', (seconds) => readLatency.observe(seconds));
      hub.on('fanout', (seconds) => fanoutLatency.observe(seconds));
    }
    // process_* and nodejs_* metrics, event-loop delay (nodejs_eventloop_lag_*) among them.
    collectDefaultMetrics({ register: registry });
  }

  connectionOpened(transport: Transport): void {
    this.opened.inc({ transport });
    this.clients.inc({ transport });
  }

  connectionClosed(transport: Transport, reason: CloseReason): void {
    this.closed.inc({ transport, reason });
    this.clients.dec({ transport });
  }

  connectionRefused(transport: Transport, reason: string): void {
    this.refused.inc({ transport, reason });
  }

  /** The text exposition format. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
