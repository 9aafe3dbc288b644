/**
 * A separate track's writer (`TrackWriter`) over a long call, without a server: what it keeps in
 * memory, and that the file it streams out still decodes and seeks at its end.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { parseOggPackets } from '../../src/media/ogg';
import { TrackWriter, type TrackTarget } from '../../src/tracks/TrackWriter';
import { DEBIAN_FFMPEG, FFPROBE } from '../helpers/media';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-trackwriter-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('TrackWriter', () => {
  test('a long call costs a track its seek index only: 20 minutes of a microphone, the heap grows under 1.5 MB, and the index is at the end of the file', async () => {
    // What is kept is one Matroska cue per cluster of about a second (~0.6 KB each, ~0.75 MB
    // here). Keeping anything per packet (60,000 of them) would show above the limit.
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const ogg = path.join(dir, 'tone.ogg');
    execFileSync(DEBIAN_FFMPEG, ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'sine=f=440:r=48000:d=2', '-c:a', 'libopus', '-b:a', '32k', ogg]);
    const packets = parseOggPackets(fs.readFileSync(ogg)).slice(2); // after OpusHead and OpusTags
    const file = path.join(dir, 'mic.webm');
    const fd = fs.openSync(file, 'w');
    let bytes = 0;
    const target: TrackTarget = {
      location: { kind: 'file', key: 'mic.webm' },
      write: (data) => (fs.writeSync(fd, data), (bytes += data.length)),
      finish: async () => (fs.closeSync(fd), bytes),
      abort: async () => fs.closeSync(fd),
    };
    const writer = new TrackWriter({ id: 't1', participantId: 'p1', name: 'Ann', sourceId: 's1', kind: 'microphone', codec: 'opus', target });
    const heap = async () => (await new Promise((r) => setTimeout(r, 150)), gc(), process.memoryUsage().heapUsed);
    const wall0 = Date.now();
    const count = 20 * 60 * 50; // 20 ms packets
    let before = 0;
    for (let i = 0; i < count; i++) {
      writer.audio({ data: packets[i % packets.length], rtpTimestamp: (i * 960) >>> 0 } as never, wall0 + i * 20);
      if (i % 500 === 499) await new Promise((r) => setTimeout(r, 0)); // the writer's batches go to the muxer
      if (i === 60 * 50) before = await heap(); // after the first minute: the muxer and V8 warmed up
    }
    const grown = (await heap()) - before;
    const info = await writer.end(wall0);
    expect(writer.error).toBeNull();
    expect(info.state).toBe('complete');
    expect(info.packets).toBe(count);
    expect(info.end).toBe(20 * 60 * 1000);
    expect(grown).toBeLessThan(1.5e6);
    // The index (Cues, EBML id 1C 53 BB 6B) is in the file's last part, after the last cluster;
    // with it a player starts in the last minute without reading the rest.
    const tail = fs.readFileSync(file).subarray(-200_000);
    const cues = tail.indexOf(Buffer.from([0x1c, 0x53, 0xbb, 0x6b]));
    expect(cues).toBeGreaterThan(0);
    expect(tail.indexOf(Buffer.from([0x1f, 0x43, 0xb6, 0x75]), cues)).toBe(-1); // no cluster after it
    const probe = execFileSync(FFPROBE, ['-v', 'error', '-read_intervals', '1170%+2', '-show_entries', 'packet=pts_time', '-of', 'csv=p=0', file], { encoding: 'utf8' });
    const first = Number(probe.trim().split('\n')[0]);
    expect(first).toBeGreaterThan(1160);
    expect(first).toBeLessThan(1171);
  }, 60_000);
});
