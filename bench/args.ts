/** The bench's flags: parsed, defaulted and validated; `--help` text built from the same table. */
import { FILTER_KINDS, type FilterKind, type FilterSpec } from './filter-plan.js';

export const BASELINES = ['poll100', 'poll5000', 'raw'] as const;
export type Baseline = (typeof BASELINES)[number];
export type Transport = 'sse' | 'ws';

export interface BenchOptions {
  /** Client counts of the streaming runs (one run per count and target); empty: none. */
  clients: number[];
  /** Commits per second (0: as fast as the writer can). */
  rate: number;
  rowsPerCommit: number;
  rowBytes: number;
  /** Seconds of writing per streaming run. */
  duration: number;
  /** Transports of the server under test: each client count runs once per transport (and per worker count). */
  transports: Transport[];
  /** The server's `--workers` values to run (1: one process, pinned to CPU 0; more: not pinned). */
  workers: number[];
  baselines: Baseline[];
  /**
   * Edge counts of the scale-out runs (docs/scaling.md): each client count runs once with the origin serving every
   * client, then once per count with the clients split across that many edges. Empty: no such runs.
   */
  edges: number[];
  /** Filters of the streaming runs (see filter-plan.ts): each runs side by side with the others. */
  filters: FilterSpec[];
  /** Users the rows are spread over; 0: each filter's default (own and none: one per client; same: 1). */
  users: number;
  quick: boolean;
  /** Rows in one transaction for the burst run; 0: no burst run. */
  burst: number;
  burstClients: number;
  /** Clients held for the idle-capacity run; 0: no such run. */
  idleClients: number;
  /** Seconds of measuring idle CPU with every client connected. */
  idleSeconds: number;
  synchronous: 'full' | 'normal' | 'off';
  /** Most connections per load process. */
  perProcess: number;
  /** Pin the server to CPU 0 and everything else to the other CPUs. */
  pin: boolean;
  /** Extra flags for the server under test, e.g. `--history-rows 20000`. */
  serverArgs: string[];
  /** Directory for the server's `--cpu-prof` output; profiling is off without it. */
  cpuProf: string | undefined;
  /** The server's cli.js; default: this checkout's dist/src/cli.js. */
  server: string | undefined;
  /** Also append the tables to this file. */
  out: string | undefined;
  help: boolean;
}

interface Flag {
  value?: string;
  help: string;
  default: string;
}

export const FLAGS: Record<string, Flag> = {
  clients: { value: 'N,N,...', help: 'client counts of the streaming runs (0: skip them)', default: '1,100,1000' },
  rate: { value: 'N', help: 'commits per second (0: as fast as possible)', default: '100' },
  'rows-per-commit': { value: 'N', help: 'rows in each commit', default: '1' },
  'row-bytes': { value: 'N', help: "approximate size of a row's JSON", default: '100' },
  duration: { value: 'SECONDS', help: 'seconds of writing per streaming run', default: '10' },
  transport: { value: 'LIST', help: 'transports of the server under test, e.g. sse,ws (one run of each, side by side)', default: 'sse' },
  workers: { value: 'N,N,...', help: "the server's --workers values to run, e.g. 1,2 (more than 1: server and load not pinned)", default: '1' },
  edges: {
    value: 'N,N,...',
    help: 'scale-out runs instead of the single-server ones: origin --redis serving directly, then the clients split across N edges (--edge), Redis started by the bench; sets --clients 1000 and --baseline none unless given',
    default: 'none',
  },
  filter: {
    value: 'LIST',
    help: 'filters of the streaming runs, side by side: none (every row), own (client i: user_id=eq.i), same (every client: user_id=eq.0); KIND@N runs that one at N clients only',
    default: 'none',
  },
  users: { value: 'N', help: 'users the rows go to, round robin (own, none: one per client; same: 1, so every row matches)', default: 'per filter' },
  baseline: { value: 'LIST', help: `baselines run next to the server: ${BASELINES.join(',')}, all or none`, default: 'all' },
  burst: { value: 'ROWS', help: 'also run a burst: this many rows in one transaction (0: no burst run); with --server-arg --metrics, also the server\'s event-loop delay', default: '0' },
  'burst-clients': { value: 'N', help: 'clients connected during the burst', default: '100' },
  'idle-clients': { value: 'N', help: 'also run a capacity test holding this many idle clients (0: none)', default: '0' },
  'idle-seconds': { value: 'SECONDS', help: 'seconds of measuring idle CPU with all clients connected', default: '3' },
  synchronous: { value: 'full|normal|off', help: "the writer's PRAGMA synchronous", default: 'full' },
  'per-process': { value: 'N', help: 'most connections held by one load process', default: '2500' },
  'no-pin': { help: 'do not pin the server to CPU 0 and the load to the other CPUs', default: 'pinned when there are 2+ CPUs' },
  'server-arg': { value: 'FLAGS', help: 'extra flags for the server under test (quoted, space-separated)', default: 'none' },
  server: { value: 'PATH', help: "the server's cli.js to run (another build, e.g. a snapshot of a commit)", default: 'dist/src/cli.js' },
  'cpu-prof': { value: 'DIR', help: "run the server with node --cpu-prof into DIR and print its top functions", default: 'off' },
  out: { value: 'FILE', help: 'also append the tables to FILE', default: 'stdout only' },
  quick: { help: 'a run of under a minute: 10 and 100 clients, 3 s each, baselines poll100,raw', default: 'off' },
  help: { help: 'show this help', default: '' },
};

export class ArgsError extends Error {}

/** Parses `argv` (without node and the script); throws ArgsError with a one-line message naming the flag. */
export function parseBenchArgs(argv: readonly string[]): BenchOptions {
  const given = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) throw new ArgsError(`unexpected argument ${JSON.stringify(arg)} (see --help)`);
    const eq = arg.indexOf('=');
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    const flag = FLAGS[name];
    if (!flag) throw new ArgsError(`unknown option --${name} (see --help)`);
    if (!flag.value) {
      if (eq !== -1) throw new ArgsError(`--${name} takes no value`);
      given.set(name, 'true');
      continue;
    }
    const value = eq !== -1 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined) throw new ArgsError(`--${name} expects ${flag.value}`);
    given.set(name, value);
  }
  const quick = given.has('quick');
  const edges = given.has('edges') ? [...new Set(countList('edges', given.get('edges')!))] : [];
  const edgeDefaults: Record<string, string> = edges.length ? { clients: '1000', baseline: 'none' } : {};
  const text = (name: string, quickDefault?: string) => given.get(name) ?? (quick && quickDefault !== undefined ? quickDefault : edgeDefaults[name] ?? FLAGS[name].default);
  const options: BenchOptions = {
    clients: countList('clients', text('clients', '10,100')),
    rate: number('rate', text('rate', '50'), 0),
    rowsPerCommit: number('rows-per-commit', text('rows-per-commit'), 1, true),
    rowBytes: number('row-bytes', text('row-bytes'), 1, true),
    duration: number('duration', text('duration', '3'), 0.1),
    transports: [...new Set(text('transport').split(',').map((part) => oneOf('transport', part.trim(), ['sse', 'ws'] as const)))],
    workers: [...new Set(countList('workers', text('workers')))],
    edges,
    baselines: baselines(text('baseline', 'poll100,raw')),
    filters: filterSpecs(text('filter')),
    users: given.has('users') ? number('users', given.get('users')!, 1, true) : 0,
    quick,
    burst: number('burst', text('burst'), 0, true),
    burstClients: number('burst-clients', text('burst-clients'), 1, true),
    idleClients: number('idle-clients', text('idle-clients'), 0, true),
    idleSeconds: number('idle-seconds', text('idle-seconds', '1'), 0.1),
    synchronous: oneOf('synchronous', text('synchronous'), ['full', 'normal', 'off'] as const),
    perProcess: number('per-process', text('per-process'), 1, true),
    pin: !given.has('no-pin'),
    serverArgs: given.has('server-arg') ? given.get('server-arg')!.split(/\s+/).filter(Boolean) : [],
    cpuProf: given.get('cpu-prof'),
    server: given.get('server'),
    out: given.get('out'),
    help: given.has('help'),
  };
  if (given.has('edges') && edges.length === 0) throw new ArgsError('--edges expects at least one edge count of 1 or more, e.g. 1,2,3');
  if (edges.length && options.filters.some((spec) => spec.kind !== 'none')) throw new ArgsError('--edges runs are unfiltered: give --filter only without --edges');
  if (edges.length && (options.workers.length > 1 || options.workers[0] !== 1)) throw new ArgsError('--edges runs one origin process: give --workers only without --edges');
  if (options.workers.length === 0) throw new ArgsError('--workers expects at least one count of 1 or more');
  if (options.serverArgs.includes('--workers') && (options.workers.length > 1 || options.workers[0] !== 1)) {
    throw new ArgsError('give the worker count either as --workers N,N or in --server-arg, not both');
  }
  if (options.perProcess > 19000) throw new ArgsError('--per-process expects at most 19000 (each process may hold 20,000 open files)');
  return options;
}

function number(name: string, text: string, min: number, integer = false): number {
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || value < min || (integer && !Number.isInteger(value))) {
    throw new ArgsError(`--${name} expects ${integer ? 'a whole number' : 'a number'} of at least ${min}, got ${JSON.stringify(text)}`);
  }
  return value;
}

function countList(name: string, text: string): number[] {
  const values = text.split(',').map((part) => number(name, part.trim(), 0, true));
  return values.filter((value) => value > 0);
}

function oneOf<T extends string>(name: string, text: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(text)) throw new ArgsError(`--${name} expects one of ${allowed.join(', ')}, got ${JSON.stringify(text)}`);
  return text as T;
}

function filterSpecs(text: string): FilterSpec[] {
  const specs: FilterSpec[] = [];
  for (const part of text.split(',').map((item) => item.trim())) {
    const [kind, at, ...rest] = part.split('@');
    const checked: FilterKind = oneOf('filter', kind, FILTER_KINDS);
    if (rest.length > 0) throw new ArgsError(`--filter expects KIND or KIND@CLIENTS, got ${JSON.stringify(part)}`);
    specs.push(at === undefined ? { kind: checked } : { kind: checked, clients: number('filter', at, 1, true) });
  }
  return specs;
}

function baselines(text: string): Baseline[] {
  if (text === 'all') return [...BASELINES];
  if (text === 'none' || text === '') return [];
  const list = text.split(',').map((part) => part.trim());
  for (const item of list) {
    if (!(BASELINES as readonly string[]).includes(item)) throw new ArgsError(`--baseline expects ${BASELINES.join(', ')}, all or none, got ${JSON.stringify(item)}`);
  }
  return [...new Set(list)] as Baseline[];
}

export function helpText(): string {
  const rows = Object.entries(FLAGS).map(([name, flag]) => [`  --${name}${flag.value ? ' ' + flag.value : ''}`, flag.help + (flag.default ? ` (default: ${flag.default})` : '')]);
  const width = Math.max(...rows.map(([left]) => left.length)) + 2;
  return [
    'sqlite-sse bench: commit-to-receipt latency, throughput, CPU and memory of the server under load,',
    'next to a polling baseline (the classic PHP loop at 100 ms and 5 s) and a raw net fan-out ceiling.',
    '',
    'Usage: npm run bench -- [options]     (or: node dist/bench/run.js [options])',
    '',
    'Options:',
    ...rows.map(([left, right]) => left.padEnd(width) + right),
    '',
    'Examples:',
    '  npm run bench -- --quick',
    '  npm run bench -- --clients 1000 --rate 100 --baseline poll100,raw',
    '  npm run bench -- --clients 100,1000 --transport sse,ws --baseline raw',
    '  npm run bench -- --clients 1000 --workers 1,2 --idle-clients 18000 --baseline none',
    '  npm run bench -- --clients 0 --burst 100000 --burst-clients 100',
    '  npm run bench -- --clients 10000 --rate 100 --filter none@100,own --baseline none --per-process 5000',
    '  npm run bench -- --clients 10000 --rate 10 --filter none,same --baseline none',
    '  npm run bench -- --clients 0 --idle-clients 18000',
    '  npm run bench -- --edges 1,2,3                      (1000 clients at 100 commits/s: origin direct, then 1, 2, 3 edges)',
  ].join('\n');
}
