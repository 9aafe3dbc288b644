/**
 * The benchmark's memory sampler, in a process of its own: reading /proc/<pid>/smaps_rollup of
 * every process of a recording's tree takes long enough to stall an event loop, and in the
 * benchmark's own process it delayed the synthetic participants' frames (two recordings at once
 * showed 24-28 % repeated frames with it in-process, none without it).
 *
 * `node bench/memsampler.js ROOT_PID`: every 500 ms, RSS and PSS of ROOT_PID's descendants (this
 * process and the pids last given on stdin as `exclude <pid> ...` left out) plus ROOT_PID's growth;
 * on `stop` it prints `{ rssMB, pssMB, cpuSeconds }` (peaks, and its own CPU) and exits.
 */
'use strict';
const fs = require('node:fs');
const root = Number(process.argv[2]);
let exclude = new Set();

function descendants(pid) {
  let children = [];
  try { children = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number); } catch { /* gone */ }
  return children.flatMap((c) => [c, ...descendants(c)]);
}

function kb(file, re) {
  try { return Number(re.exec(fs.readFileSync(file, 'utf8'))?.[1] ?? 0) * 1024; } catch { return 0; }
}

const baseRss = kb(`/proc/${root}/status`, /VmRSS:\s+(\d+) kB/);
let peakRss = 0, peakPss = 0;
function sample() {
  const growth = Math.max(0, kb(`/proc/${root}/status`, /VmRSS:\s+(\d+) kB/) - baseRss);
  let rss = growth, pss = growth;
  for (const pid of descendants(root)) {
    if (pid === process.pid || exclude.has(pid)) continue;
    rss += kb(`/proc/${pid}/status`, /VmRSS:\s+(\d+) kB/);
    pss += kb(`/proc/${pid}/smaps_rollup`, /^Pss:\s+(\d+) kB/m);
  }
  peakRss = Math.max(peakRss, rss);
  peakPss = Math.max(peakPss, pss);
}

const timer = setInterval(sample, 500);
let buf = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => {
  buf += chunk;
  for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
    const [cmd, ...args] = buf.slice(0, i).trim().split(/\s+/);
    buf = buf.slice(i + 1);
    if (cmd === 'exclude') exclude = new Set(args.map(Number));
    if (cmd === 'stop') {
      clearInterval(timer);
      sample();
      const u = process.cpuUsage();
      process.stdout.write(JSON.stringify({ rssMB: peakRss / 1e6, pssMB: peakPss / 1e6, cpuSeconds: (u.user + u.system) / 1e6 }) + '\n', () => process.exit(0));
    }
  }
});
