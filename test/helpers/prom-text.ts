import { request, type IncomingHttpHeaders } from 'node:http';
import { withTimeout } from './wait.js';

/** One sample line of the Prometheus text exposition format: `name{label="value",...} value [timestamp]`. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** A parsed exposition: the samples, and the `# TYPE` of each metric family. */
export class Exposition {
  readonly samples: Sample[] = [];
  readonly types = new Map<string, string>();
  readonly help = new Map<string, string>();

  /** The sum of the samples named `name` whose labels include `labels` (undefined: no such sample). */
  value(name: string, labels: Record<string, string> = {}): number | undefined {
    let sum: number | undefined;
    for (const sample of this.samples) {
      if (sample.name !== name) continue;
      if (!Object.entries(labels).every(([key, value]) => sample.labels[key] === value)) continue;
      sum = (sum ?? 0) + sample.value;
    }
    return sum;
  }

  has(name: string): boolean {
    return this.samples.some((sample) => sample.name === name);
  }

  names(): string[] {
    return [...new Set(this.samples.map((sample) => sample.name))];
  }
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;

/** Values as Prometheus reads them (Go's ParseFloat: `NaN`, `+Inf` in any case; prom-client writes `Nan`). */
function parseValue(text: string): number {
  const lower = text.toLowerCase();
  if (lower === '+inf' || lower === 'inf') return Infinity;
  if (lower === '-inf') return -Infinity;
  if (lower === 'nan') return NaN;
  const value = Number(text);
  if (text === '' || Number.isNaN(value)) throw new Error(`not a sample value: ${JSON.stringify(text)}`);
  return value;
}

/** Parse `{a="x",b="y\"z"}` starting at `line[at] === '{'`; returns the labels and the index after `}`. */
function parseLabels(line: string, at: number): { labels: Record<string, string>; end: number } {
  const labels: Record<string, string> = {};
  let i = at + 1;
  for (;;) {
    while (line[i] === ' ' || line[i] === ',') i++;
    if (line[i] === '}') return { labels, end: i + 1 };
    const name = NAME.exec(line.slice(i));
    if (!name) throw new Error(`bad label name in: ${line}`);
    i += name[0].length;
    if (line[i] !== '=' || line[i + 1] !== '"') throw new Error(`expected ="..." in: ${line}`);
    i += 2;
    let value = '';
    for (;;) {
      const c = line[i++];
      if (c === undefined) throw new Error(`unterminated label value in: ${line}`);
      if (c === '"') break;
      if (c === '\\') {
        const next = line[i++];
        value += next === 'n' ? '\n' : next;
      } else value += c;
    }
    labels[name[0]] = value;
  }
}

/** A tiny parser of the text format (version 0.0.4): enough to check what a test did. Throws on a malformed line. */
export function parseExposition(text: string): Exposition {
  const out = new Exposition();
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    if (line.startsWith('#')) {
      const meta = /^# (TYPE|HELP) (\S+) (.*)$/.exec(line);
      if (meta?.[1] === 'TYPE') out.types.set(meta[2], meta[3]);
      else if (meta?.[1] === 'HELP') out.help.set(meta[2], meta[3]);
      continue;
    }
    const name = NAME.exec(line);
    if (!name) throw new Error(`bad sample line: ${line}`);
    let i = name[0].length;
    let labels: Record<string, string> = {};
    if (line[i] === '{') ({ labels, end: i } = parseLabels(line, i));
    const rest = line.slice(i).trim().split(/\s+/);
    if (rest.length < 1 || rest.length > 2) throw new Error(`bad sample line: ${line}`);
    out.samples.push({ name: name[0], labels, value: parseValue(rest[0]) });
  }
  return out;
}

export interface HttpAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A plain GET on its own connection (no keep-alive agent), with a timeout. */
export function httpGet(url: string, headers: Record<string, string> = {}, timeoutMs = 5000, localAddress?: string): Promise<HttpAnswer> {
  let req: ReturnType<typeof request> | undefined;
  return withTimeout(
    new Promise<HttpAnswer>((resolve, reject) => {
      req = request(url, { headers, agent: false, localAddress }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    }),
    timeoutMs,
    `GET ${url}`,
  ).catch((error) => {
    req?.destroy();
    throw error;
  });
}

/** Scrape `/metrics` and parse it. */
export async function scrape(baseUrl: string): Promise<Exposition> {
  const answer = await httpGet(baseUrl + '/metrics');
  if (answer.status !== 200) throw new Error(`/metrics answered ${answer.status}: ${answer.body.trim()}`);
  return parseExposition(answer.body);
}
