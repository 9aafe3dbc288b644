/**
 * Starting a child process blocks Node's event loop for the whole fork (measured here: about
 * 0.1 ms per MB of the parent's resident memory, 30 ms at 300 MB, more under load). A room of
 * nine starting to record wants ~30 FFmpeg children at once; spawned back to back they would
 * stall the pacer for a second. Decoders and name cards therefore queue here and start one per
 * event-loop turn, with timers and I/O (the pacer, decoder output) served in between. The
 * compositor and encoder do not queue: they are on the recording's critical path.
 */
const queue: (() => void)[] = [];
const later: (() => void)[] = [];
let running = false;

/** `low` jobs (name cards) wait until no decoder is queued: media first, cosmetics after. */
export function enqueueSpawn(job: () => void, priority: 'high' | 'low' = 'high'): void {
  (priority === 'high' ? queue : later).push(job);
  if (!running) {
    running = true;
    setImmediate(next);
  }
}

function next(): void {
  const job = queue.shift() ?? later.shift();
  if (!job) {
    running = false;
    return;
  }
  try {
    job();
  } finally {
    // A timer, not setImmediate: the timers phase (the pacer) must run before the next spawn.
    setTimeout(next, 1);
  }
}

/** Jobs waiting (for tests and diagnostics). */
export function pendingSpawns(): number {
  return queue.length + later.length;
}
