/**
 * Was anything else using the CPUs during a run? The load average cannot say: the bench's own server, load
 * processes and writer raise it. So: CPU time of the whole machine (/proc/stat) minus the CPU time of this process
 * and every child it has reaped (/proc/self/stat utime + stime + cutime + cstime), over the same interval.
 */
import { readFileSync } from 'node:fs';
import { wallMs } from './clock.js';

const TICK_MS = 10;

export interface CpuSample {
  at: number;
  machineMs: number;
  oursMs: number;
}

export function sampleCpu(): CpuSample {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal: busy is user + nice + system + steal. Interrupt time is left out:
  // the kernel's loopback TCP work for the bench's own sockets lands there and belongs to no process.
  const busy = fields[0] + fields[1] + fields[2] + (fields[7] ?? 0);
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const own = stat.slice(stat.lastIndexOf(')') + 2).split(' ').slice(11, 15).map(Number);
  return { at: wallMs(), machineMs: busy * TICK_MS, oursMs: own.reduce((a, b) => a + b, 0) * TICK_MS };
}

/**
 * CPU used by other work between two samples, as a share of one core (100 = one core busy all along).
 * Call `to` once the bench's children have exited (their time is counted only once reaped); children still running
 * count as "other", so the figure is an upper bound.
 */
export function otherCpuPercent(from: CpuSample, to: CpuSample): number {
  const wall = Math.max(1, to.at - from.at);
  return Math.max(0, (to.machineMs - from.machineMs - (to.oursMs - from.oursMs)) / wall) * 100;
}
