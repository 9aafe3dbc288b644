#!/usr/bin/env node
/**
 * `npm test`'s runner: jest in two lanes at once.
 *
 * Most suites run one at a time in the main lane (`--runInBand`), so timing-sensitive pipelines
 * get the cores. A few suites spend minutes waiting on the wall clock with almost no CPU — the
 * 3-minute S3 outage above all — and serialising them only made the run longer (about 5 of its
 * 25 minutes). They run in a side lane, a second jest beside the main one; its output is kept and
 * printed as one block when both have ended, so the log reads as two whole reports.
 *
 * Arguments (`npm test -- tests/unit`, `-t name`, ...) skip the lanes: one jest runs with them.
 * The exit code is non-zero if either lane failed.
 */
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.join(__dirname, '..');
const jestBin = require.resolve('jest/bin/jest', { paths: [root] });

/** Wall-clock-bound suites with little CPU: what the side lane runs (paths under tests/). */
const SIDE_LANE = ['integration/s3-outage.test.ts'];

const children = new Set();
function run(args, stdio) {
  const child = spawn(process.execPath, [jestBin, ...args], { cwd: root, stdio, env: process.env });
  children.add(child);
  return new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      children.delete(child);
      resolve(code ?? (signal ? 1 : 0));
    });
  });
}
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    for (const c of children) c.kill(sig);
    process.exit(1);
  });
}

/**
 * The failed tests of both lanes, a few lines each, printed last: a CI log is often kept only as
 * its tail, and jest's own report puts the failures minutes of output earlier.
 */
function failureSummary(files) {
  const strip = (t) => t.replace(/\u001b\[[0-9;]*m/g, '');
  const lines = [];
  for (const f of files) {
    let r;
    try {
      r = JSON.parse(fs.readFileSync(f, 'utf8'));
    } catch {
      lines.push(`(no jest report in ${f})`);
      continue;
    } finally {
      fs.rmSync(f, { force: true });
    }
    for (const suite of r.testResults ?? []) {
      const file = path.relative(root, suite.name);
      const failed = (suite.assertionResults ?? []).filter((a) => a.status === 'failed');
      if (failed.length === 0 && suite.status === 'failed') lines.push(`FAIL ${file}: ${strip(suite.message ?? '').trim().split('\n').slice(0, 6).join('\n    ')}`);
      for (const a of failed) {
        const msg = strip((a.failureMessages ?? []).join('\n')).split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('at ')).slice(0, 6);
        lines.push(`FAIL ${file} › ${a.fullName}\n    ${msg.join('\n    ')}`);
      }
    }
  }
  return lines.length ? `\n===== failed tests =====\n${lines.join('\n')}\n` : '\n===== no failed tests =====\n';
}

async function main() {
  const extra = process.argv.slice(2);
  if (extra.length > 0) return run(['--runInBand', ...extra], 'inherit');

  const sidePaths = SIDE_LANE.map((p) => path.join(root, 'tests', p));
  const ignore = SIDE_LANE.map((p) => `--testPathIgnorePatterns=${p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`);
  const logFile = path.join(os.tmpdir(), `tessera-test-side-${process.pid}.log`);
  const log = fs.openSync(logFile, 'w');
  const started = Date.now();
  process.stdout.write(`side lane (${SIDE_LANE.join(', ')}) runs beside the main lane; its report follows the main one\n`);
  const mainJson = path.join(os.tmpdir(), `tessera-test-main-${process.pid}.json`);
  const sideJson = path.join(os.tmpdir(), `tessera-test-side-${process.pid}.json`);
  const side = run(['--runInBand', '--json', `--outputFile=${sideJson}`, ...sidePaths], ['ignore', log, log]);
  const mainCode = await run(['--runInBand', '--json', `--outputFile=${mainJson}`, '--testPathIgnorePatterns=/node_modules/', ...ignore], 'inherit');
  const sideCode = await side;
  fs.closeSync(log);
  process.stdout.write(`\n===== side lane: ${SIDE_LANE.join(', ')} (exit ${sideCode}) =====\n`);
  process.stdout.write(fs.readFileSync(logFile, 'utf8'));
  fs.rmSync(logFile, { force: true });
  const s = Math.round((Date.now() - started) / 1000);
  process.stdout.write(failureSummary([mainJson, sideJson]));
  process.stdout.write(`\n===== main lane exit ${mainCode}, side lane exit ${sideCode}, ${s} s in all =====\n`);
  return mainCode !== 0 ? mainCode : sideCode;
}

main().then((code) => process.exit(code), (err) => {
  process.stderr.write(`${err.stack ?? err}\n`);
  process.exit(1);
});
