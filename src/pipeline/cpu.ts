/**
 * CPU figures from /proc (Linux): what a process tree has used, and how many cores this process
 * may use (its cgroup's quota, which is what a Kubernetes CPU limit sets, else its CPUs).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
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

/**
 * The cgroup directories whose CPU quota applies to this process, its own first, then its
 * ancestors up to the hierarchy's root (a quota on any of them limits it). Its own is found from
 * /proc/self/cgroup: a process moved into a child cgroup (a test's quota, a systemd slice) is
 * limited by that one, not by the root's, which is all a reading of the mount point sees. Inside
 * a container the path is "/" (a cgroup namespace) or not found under the mount: the mount
 * point's own files are the container's.
 */
function cgroupDirs(mount: string, controller: string | null): string[] {
  let rel = '/';
  try {
    for (const line of fs.readFileSync('/proc/self/cgroup', 'utf8').split('\n')) {
      const [, controllers, p] = line.split(':');
      if (p === undefined) continue;
      if (controller === null ? controllers === '' : controllers.split(',').includes(controller)) rel = p;
    }
  } catch {
    /* not Linux */
  }
  const dirs: string[] = [];
  for (let r = rel; ; r = path.posix.dirname(r)) {
    const d = path.join(mount, r);
    if (fs.existsSync(d)) dirs.push(d);
    if (r === '/' || r === '.' || r === '') break;
  }
  return dirs.length ? dirs : [mount];
}

/** The cores this process may use: the lowest CPU quota of its cgroups, else its CPUs. */
export function availableCores(): number {
  let cores = os.availableParallelism?.() ?? os.cpus().length;
  // cgroup v2: "max 100000" or "<quota> <period>" in cpu.max
  for (const d of cgroupDirs('/sys/fs/cgroup', null)) {
    try {
      const [q, p] = fs.readFileSync(path.join(d, 'cpu.max'), 'utf8').trim().split(/\s+/);
      if (q !== 'max' && Number(p) > 0) cores = Math.min(cores, Number(q) / Number(p));
    } catch {
      /* not v2, or no cpu controller here */
    }
  }
  // cgroup v1: cpu.cfs_quota_us (-1: none) over cpu.cfs_period_us
  for (const d of cgroupDirs('/sys/fs/cgroup/cpu', 'cpu')) {
    try {
      const q = Number(fs.readFileSync(path.join(d, 'cpu.cfs_quota_us'), 'utf8'));
      const p = Number(fs.readFileSync(path.join(d, 'cpu.cfs_period_us'), 'utf8'));
      if (q > 0 && p > 0) cores = Math.min(cores, q / p);
    } catch {
      /* no v1 cpu controller */
    }
  }
  return cores;
}
