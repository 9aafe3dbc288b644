#!/usr/bin/env node
/**
 * `node bench/io-floor.js [sources]`: what a recording's worker costs in Node with its I/O and no
 * media work at all (docs/workers.md, day 23). The parent plays the server: per source 30
 * pictures (4 KB) and 50 Opus packets (120 B) a second, the messages of one event-loop turn sent
 * as one write on fd 3 (as src/worker/protocol.ts does). The child plays the worker: it parses
 * the messages, writes each picture with a 12-byte header to its source's pipe, writes 20 ms of
 * PCM per 20 ms from a 33-ms timer to another pipe, and reads an "epoch" (30 × 10 KB a second)
 * and an "AAC encoder" (47 × 300 B a second), sending what it reads back lazily (batched up to
 * 50 ms). Prints the child's CPU (cores) over 10 s after 7 s of warm-up.
 *
 * `--native`: the child is bench/io-floor.c instead, the same I/O in C (built with `cc` into a
 * temporary directory): what the same reads, writes and wake-ups cost without Node (day 32).
 */
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const N = Number(process.argv[2] || 4);
const NATIVE = process.argv.includes('--native');

/** The C child, compiled now (a C compiler is needed only for `--native`). */
function nativeChild() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'io-floor-'));
  const bin = path.join(dir, 'io-floor');
  execFileSync('cc', ['-O2', '-o', bin, path.join(__dirname, 'io-floor.c')]);
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return bin;
}

function parent() {
  const w = NATIVE
    ? spawn(nativeChild(), [String(N), process.execPath], { stdio: ['ignore', 'inherit', 'inherit', 'pipe'] })
    : spawn(process.execPath, ['--max-semi-space-size=1', __filename, String(N), 'child'], { stdio: ['ignore', 'inherit', 'inherit', 'pipe'] });
  const sock = w.stdio[3];
  let q = [];
  let scheduled = false;
  const send = (type, src, body) => {
    const h = Buffer.alloc(8);
    h.writeUInt32LE(body.length + 4, 0);
    h[4] = type;
    h[5] = src;
    q.push(h, body);
    if (scheduled) return;
    scheduled = true;
    setImmediate(() => {
      scheduled = false;
      sock.write(Buffer.concat(q));
      q = [];
    });
  };
  const frame = Buffer.alloc(4000, 7);
  const packet = Buffer.alloc(120, 3);
  const t0 = performance.now();
  for (let s = 0; s < N; s++) {
    let v = 0;
    let a = 0;
    // Each source on its own timer, as each participant's packets arrive on their own.
    setInterval(() => {
      const now = performance.now() - t0;
      for (; v * 33.333 < now; v++) send(1, s, frame);
      for (; a * 20 < now; a++) send(2, s, packet);
    }, 5 + s);
  }
  sock.on('data', () => undefined);
  const cpu = () => fs.readFileSync(`/proc/${w.pid}/stat`, 'utf8').split(') ')[1].split(' ').slice(11, 13).reduce((x, y) => x + Number(y), 0);
  setTimeout(() => {
    const a = cpu();
    setTimeout(() => {
      console.log(`worker I/O alone${NATIVE ? ' (C)' : ''}, ${N} source(s): ${((cpu() - a) / 100 / 10).toFixed(3)} cores`);
      w.kill();
      process.exit(0);
    }, 10_000);
  }, 7000);
}

function child() {
  const sock = new net.Socket({ fd: 3, readable: true, writable: true });
  const sink = () => spawn('sh', ['-c', 'cat > /dev/null'], { stdio: ['pipe', 'ignore', 'ignore'] }).stdin;
  const pipes = Array.from({ length: N }, sink);
  const audio = sink();
  const producer = (size, everyMs) =>
    spawn(process.execPath, ['-e', `const b=Buffer.alloc(${size},1);let k=0;const t0=Date.now();setInterval(()=>{for(;k*${everyMs}<Date.now()-t0;k++)process.stdout.write(b)},5)`], { stdio: ['ignore', 'pipe', 'ignore'] }).stdout;
  let pending = Buffer.alloc(0);
  sock.on('data', (chunk) => {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    let o = 0;
    while (pending.length - o >= 4) {
      const len = pending.readUInt32LE(o);
      if (pending.length - o - 4 < len) break;
      if (pending[o + 4] === 1) {
        const body = pending.subarray(o + 8, o + 4 + len);
        const h = Buffer.alloc(12);
        h.writeUInt32LE(body.length, 0);
        pipes[pending[o + 5]].write(Buffer.concat([h, body]));
      }
      o += 4 + len;
    }
    pending = pending.subarray(o);
  });
  let out = [];
  let timer = null;
  const lazy = (b) => {
    out.push(b);
    timer ??= setTimeout(() => {
      timer = null;
      sock.write(Buffer.concat(out));
      out = [];
    }, 50);
  };
  producer(10000, 33.333).on('data', lazy);
  producer(300, 21.33).on('data', lazy);
  const pcm = Buffer.alloc(1920);
  const t0 = performance.now();
  let blocks = 0;
  setInterval(() => {
    for (const now = performance.now() - t0; blocks * 20 < now; blocks++) audio.write(pcm);
  }, 33);
  process.on('SIGTERM', () => process.exit(0));
}

if (process.argv[3] === 'child') child();
else parent();
