/**
 * When did this process's event loop last stall? A decoder's output read late because Node
 * itself was busy (a burst of RTP, a DTLS handshake, a GC) looks exactly like a decoder behind
 * real time; skipping to a keyframe then only freezes a tile for nothing. Time checks that judge
 * a child by when Node saw its output ask here first.
 */
const PERIOD_MS = 50;
/** A turn this much later than scheduled counts as a stall. */
const STALL_MS = 150;

let timer: NodeJS.Timeout | null = null;
let expected = 0;
let lastStallEnd = -Infinity;

function ensureStarted(): void {
  if (timer) return;
  expected = performance.now() + PERIOD_MS;
  timer = setInterval(() => {
    const now = performance.now();
    if (now - expected > STALL_MS) lastStallEnd = now;
    expected = now + PERIOD_MS;
  }, PERIOD_MS);
  timer.unref();
}

/** True when the event loop stalled at any time in the last `ms` (starts watching on first call). */
export function loopStalledWithin(ms: number): boolean {
  ensureStarted();
  return performance.now() - lastStallEnd <= ms;
}
