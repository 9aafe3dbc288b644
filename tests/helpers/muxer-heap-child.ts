/**
 * Run by the worker-pure unit test in its own `node --expose-gc` process, for the reason
 * trackwriter-heap-child.ts gives (the jest process's heap also holds what other test files leave
 * behind). Muxes 20 minutes of a recording's media — argv[2]: an Annex B H.264 stream of 60
 * pictures (a keyframe every 30), argv[3]: ADTS AAC — repeated, 30 pictures and 46.875 AAC
 * frames a second, and prints one JSON line: { grown, error, moofs, mfra } (mfra: the last
 * segment written, base64).
 */
import fs from 'node:fs';
import { AccessUnitSplitter } from '../../src/media/annexb';
import { AdtsSplitter } from '../../src/media/adts';
import { Mp4Muxer } from '../../src/storage/Mp4Muxer';

async function main(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with node --expose-gc');
  const [h264, adts] = process.argv.slice(2);
  const sp = new AccessUnitSplitter();
  const aus = sp.push(fs.readFileSync(h264));
  const lastAu = sp.end();
  if (lastAu) aus.push(lastAu);
  const audio = new AdtsSplitter().push(fs.readFileSync(adts)).map((x) => x.data);
  let moofs = 0;
  let last: Buffer = Buffer.alloc(0);
  const mux = new Mp4Muxer({ fps: 30, width: 160, height: 90, fragmentMs: 1000, onSegment: (s) => (s.data.toString('latin1', 4, 8) === 'moof' && moofs++, (last = s.data)) });
  // Measured with nothing on its way to mediabunny (Mp4Muxer.settled): what is kept, not what is in flight.
  const heap = async () => (await mux.settled(), await new Promise((r) => setTimeout(r, 20)), gc(), process.memoryUsage().heapUsed);
  const ticks = 20 * 60 * 30;
  let a = 0;
  let before = 0;
  for (let t = 0; t < ticks; t++) {
    mux.video(t, aus[t % aus.length], t % 60 === 0); // a fragment every 2 s: every other keyframe of the stream is marked as one
    for (; a * 1024 < ((t + 1) * 48000) / 30; a++) mux.audio(a * 1024, audio[a % audio.length]);
    if (t % 300 === 299) await new Promise((r) => setImmediate(r));
    if (t === 1800) before = await heap(); // after the first minute: the muxer and V8 warmed up
  }
  const grown = (await heap()) - before;
  await mux.finalize(ticks);
  console.log(JSON.stringify({ grown, error: mux.error?.message ?? null, moofs, mfra: last.toString('base64') }));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
