/**
 * Every test must stop what it starts. A timer, socket or child process left running keeps the
 * jest process alive after the last test: `npm test` then never ends (CI once timed out after all
 * 145 tests had passed, on a werift RTCP timer). The environment below names the test file that
 * left something running; the global teardown fails the run, with the list, instead of hanging.
 * The per-file line is best effort (it compares counts, and jest's own timers come and go: a
 * leak can be hidden by one of them ending at the same moment); the global check is exact.
 *
 * Plain CommonJS: jest loads environments and global hooks outside the test sandbox, where
 * `process.getActiveResourcesInfo()` (Node ≥ 17) lists what keeps the event loop alive (ref'd
 * timers, sockets, servers, child processes; stdio pipes are always there).
 */
const { TestEnvironment } = require('jest-environment-node');

/** Resource types and counts in `now` beyond those in `base`. */
function beyond(base, now) {
  const left = new Map();
  for (const t of now) left.set(t, (left.get(t) ?? 0) + 1);
  for (const t of base) if (left.has(t)) left.set(t, left.get(t) - 1);
  return [...left].filter(([, n]) => n > 0).map(([t, n]) => `${t}×${n}`);
}

/** Waits until nothing runs beyond `base` (things closing take a moment); returns what still does. */
async function settle(base, ms) {
  const until = Date.now() + ms;
  for (;;) {
    // FSReqCallback: jest's own file reads come and go.
    const extra = beyond(base, process.getActiveResourcesInfo().filter((t) => t !== 'FSReqCallback'));
    if (extra.length === 0 || Date.now() >= until) return extra;
    // A ref'd timer: with an unref'd one the process could run out of work and exit (code 0)
    // while this waits, before jest had set the failing run's exit code.
    await new Promise((r) => setTimeout(r, 100));
  }
}

let runBaseline = [];

class LeakCheckingEnvironment extends TestEnvironment {
  #base = [];
  #file;
  constructor(config, context) {
    super(config, context);
    this.#file = context.testPath;
  }
  async setup() {
    await super.setup();
    this.#base = process.getActiveResourcesInfo();
  }
  async teardown() {
    await super.teardown();
    const extra = await settle(this.#base, 5000);
    if (extra.length) process.stderr.write(`\nLEAK: ${this.#file} left running 5 s after its tests: ${extra.join(', ')}\n`);
  }
}

module.exports = LeakCheckingEnvironment;
module.exports.globalSetup = async () => {
  runBaseline = process.getActiveResourcesInfo();
};
/**
 * How long the last check waits. Longer than werift's longest timer that outlives a connection:
 * a DTLS handshake cut short (a connection closed mid-handshake, as `security` does on purpose)
 * goes on retransmitting its flight on a ref'd timer, waits of 0.5, 1 … 5.5 s, 33 s in all,
 * whether or not the connection is still there. That ends on its own; it is not a hang.
 */
const LAST_CHECK_MS = 40_000;

module.exports.globalTeardown = async () => {
  const extra = await settle(runBaseline, LAST_CHECK_MS);
  if (extra.length === 0) return;
  process.stderr.write(`\nLEAK: still running ${LAST_CHECK_MS / 1000} s after the last test: ${extra.join(', ')} (see the LEAK lines above for the file). Failing the run instead of hanging.\n`);
  process.exit(1);
};
