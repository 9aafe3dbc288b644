/**
 * Run by the track-writer unit test in its own `node --expose-gc` process: the heap of the jest
 * process also holds what other test files leave behind and allocate meanwhile (a CI-like run
 * read 2.2 MB of growth here where the writer alone grows 0.8), so the measurement lives here.
 * Writes 20 minutes of a microphone (argv[2]: an Ogg Opus file; argv[3]: the track file to
 * write) and prints one JSON line: { grown, state, packets, end, error }.
 */
import fs from 'node:fs';
import { parseOggPackets } from '../../src/media/ogg';
import { TrackWriter, type TrackTarget } from '../../src/tracks/TrackWriter';

async function main(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with node --expose-gc');
  const [ogg, file] = process.argv.slice(2);
  const packets = parseOggPackets(fs.readFileSync(ogg)).slice(2); // after OpusHead and OpusTags
  const fd = fs.openSync(file, 'w');
  let bytes = 0;
  const target: TrackTarget = {
    location: { kind: 'file', key: 'mic.webm' },
    write: (data) => (fs.writeSync(fd, data), (bytes += data.length)),
    finish: async () => (fs.closeSync(fd), bytes),
    abort: async () => fs.closeSync(fd),
  };
  const writer = new TrackWriter({ id: 't1', participantId: 'p1', name: 'Ann', sourceId: 's1', kind: 'microphone', codec: 'opus', target });
  // Packets on their way to the muxer are not what the writer keeps: measure with none.
  const heap = async () => (await writer.settled(), await new Promise((r) => setTimeout(r, 20)), gc(), process.memoryUsage().heapUsed);
  const wall0 = Date.now();
  const count = 20 * 60 * 50; // 20 ms packets
  let before = 0;
  for (let i = 0; i < count; i++) {
    writer.audio({ data: packets[i % packets.length], rtpTimestamp: (i * 960) >>> 0 }, wall0 + i * 20);
    if (i % 500 === 499) await new Promise((r) => setTimeout(r, 0)); // the writer's batches go to the muxer
    // A collection every minute of packets, as a server's heap has them far more often. The
    // muxer notes every element it writes in two WeakMaps (mediabunny's EBMLWriter offsets);
    // entries go when their elements are collected, but a table stays as large as it grew, so
    // one sized by however many packets went through between two collections read here as
    // 0.5–1 MB of growth on Node 24 (CI-like runs failed at 1.61 MB; 0.64–0.81 with this). A
    // call at 50 packets a second never has the burst of 20 minutes in two seconds that made it.
    if (i % 3000 === 2999) (await writer.settled(), gc());
    if (i === 60 * 50) before = await heap(); // after the first minute: the muxer and V8 warmed up
  }
  const grown = (await heap()) - before;
  const info = await writer.end(wall0);
  console.log(JSON.stringify({ grown, state: info.state, packets: info.packets, end: info.end, error: writer.error?.message ?? null }));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
