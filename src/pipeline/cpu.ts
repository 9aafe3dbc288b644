/**
 * CPU figures from /proc (Linux): what a process tree has used, and how many cores this process
 * may use (its cgroup's quota, which is what a Kubernetes CPU limit sets, else its CPUs).
 */
import fs from 'node:fs';
import os from 'node:os';
import { execFileSync } from 'node:child_process';

let tick = 0;
function clockTicks(): number {
  if (!tick) {
    try {
      tick = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      tick = 100;
    }
  }
  return tick;
}

/** utime, stime, cutime, cstime of a process in seconds, or null when it is gone. */
function statTimes(pid: number | 'self'): [number, number, number, number] | null {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    // After "pid (comm) ": state=0 ... utime=11 stime=12 cutime=13 cstime=14
    const t = clockTicks();
    return [Number(fields[11]) / t, Number(fields[12]) / t, Number(fields[13]) / t, Number(fields[14]) / t];
  } catch {
    return null;
  }
}

/** Live descendants of `pid` (children first, depth first). */
export function descendants(pid: number): number[] {
  const out: number[] = [];
  let children: string[] = [];
  try {
    children = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
  } catch {
    /* gone */
  }
  for (const c of children) out.push(Number(c), ...descendants(Number(c)));
  return out;
}

/**
 * CPU seconds used so far by this process, its reaped children and its live descendants. A
 * difference of two readings over wall time is the tree's cores; a child reaped in between moves
 * from the live sum to the reaped one without loss.
 */
export function treeCpuSeconds(): number {
  const self = statTimes('self');
  if (!self) return 0;
  let total = self[0] + self[1] + self[2] + self[3];
  for (const pid of descendants(process.pid)) {
    const t = statTimes(pid);
    if (t) total += t[0] + t[1];
  }
  return total;
}

/** The cores this process may use: its cgroup CPU quota if it has one, else its CPUs. */
export function availableCores(): number {
  const cpus = os.availableParallelism?.() ?? os.cpus().length;
  try {
    // cgroup v2: "max 100000" or "<quota> <period>"
    const [q, p] = fs.readFileSync('/sys/fs/cgroup/cpu.max', 'utf8').trim().split(/\s+/);
    if (q !== 'max') return Math.min(cpus, Number(q) / Number(p));
  } catch {
    /* not v2 */
  }
  try {
    const q = Number(fs.readFileSync('/sys/fs/cgroup/cpu/cpu.cfs_quota_us', 'utf8'));
    const p = Number(fs.readFileSync('/sys/fs/cgroup/cpu/cpu.cfs_period_us', 'utf8'));
    if (q > 0 && p > 0) return Math.min(cpus, q / p);
  } catch {
    /* no v1 cpu controller */
  }
  return cpus;
}
