/**
 * Summarizes a V8 `.cpuprofile` (from `node --cpu-prof`): self time per function, and per file, as tables.
 *
 *   node dist/bench/profile-summary.js FILE.cpuprofile [TOP]
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { markdownTable } from './table.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  totalMs: number;
  functions: { name: string; where: string; ms: number; percent: number }[];
  files: { file: string; ms: number; percent: number }[];
}

export function summarizeProfile(profile: CpuProfile, top = 20): ProfileSummary {
  const byNode = new Map<number, ProfileNode>();
  for (const node of profile.nodes) byNode.set(node.id, node);
  const selfUs = new Map<number, number>();
  let total = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const delta = profile.timeDeltas[i + 1] ?? 0;
    selfUs.set(profile.samples[i], (selfUs.get(profile.samples[i]) ?? 0) + delta);
    total += delta;
  }
  const functions = new Map<string, { name: string; where: string; us: number }>();
  const files = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const frame = byNode.get(id)!.callFrame;
    const file = shortUrl(frame.url) || '(native)';
    const name = frame.functionName || '(anonymous)';
    const where = frame.url ? `${file}:${frame.lineNumber + 1}` : file;
    const key = `${name} ${where}`;
    const entry = functions.get(key) ?? { name, where, us: 0 };
    entry.us += us;
    functions.set(key, entry);
    files.set(file, (files.get(file) ?? 0) + us);
  }
  const percent = (us: number) => (total ? (us / total) * 100 : 0);
  return {
    totalMs: total / 1000,
    functions: [...functions.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((f) => ({ name: f.name, where: f.where, ms: f.us / 1000, percent: percent(f.us) })),
    files: [...files.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([file, us]) => ({ file, ms: us / 1000, percent: percent(us) })),
  };
}

function shortUrl(url: string): string {
  const at = url.indexOf('/dist/');
  if (at !== -1) return url.slice(at + 1);
  const modules = url.lastIndexOf('/node_modules/');
  if (modules !== -1) return url.slice(modules + 1);
  return url.replace(/^file:\/\//, '');
}

export function profileTables(summary: ProfileSummary): string {
  const fn = markdownTable(
    ['self ms', '%', 'function', 'where'],
    summary.functions.map((f) => [f.ms.toFixed(1), f.percent.toFixed(1), f.name, f.where]),
  );
  const files = markdownTable(['self ms', '%', 'file'], summary.files.map((f) => [f.ms.toFixed(1), f.percent.toFixed(1), f.file]));
  return `Profile: ${summary.totalMs.toFixed(0)} ms sampled\n\n${fn}\n\nBy file:\n\n${files}`;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [file, top] = process.argv.slice(2);
  if (!file) {
    console.error('usage: node dist/bench/profile-summary.js FILE.cpuprofile [TOP]');
    process.exit(1);
  }
  console.log(profileTables(summarizeProfile(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile, Number(top ?? 20))));
}
