import fs from 'node:fs';
import path from 'node:path';

/**
 * A cgroup v1 CPU group for processes that stand in for people on their own machines (browsers,
 * `npm run participant` peers). The scheduler weighs a group as one entity against the processes
 * outside it, however many threads it holds: `shares` 1024 is one nice-0 process's weight, 2 the
 * least there is. Returns the group's `cgroup.procs` (write a pid to it to move that process in),
 * or null where the controller is not writable (not root, no cgroup v1): callers then fall back
 * on nice or SCHED_IDLE.
 */
export function cpuGroup(name: string, shares: number): string | null {
  const dir = path.join('/sys/fs/cgroup/cpu', name);
  try {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'cpu.shares'), String(shares));
    return path.join(dir, 'cgroup.procs');
  } catch {
    return null;
  }
}

/** Remove the group once its processes have exited (a group only goes when empty). */
export function removeCpuGroup(name: string): void {
  try {
    fs.rmdirSync(path.join('/sys/fs/cgroup/cpu', name));
  } catch {
    /* absent, or a process still in it */
  }
}
