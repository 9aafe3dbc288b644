/**
 * A recorder process for the tracks crash test: a recording's manifest (through an S3Sink, as
 * the server checkpoints it) and two tracks written by TrackWriter into S3TrackTargets — a camera
 * fed as fast as it can be (so its upload has whole parts in the bucket within a second or two)
 * and a microphone at real time. Prints one JSON line per second; the test SIGKILLs it.
 * argv[2]: { cfg: Config['s3'], recordingId, roomId, credentials }.
 */
import { DEBIAN_FFMPEG } from './media';
import { logger } from '../../src/logger';
import { makeSyntheticClip } from '../../src/media/SyntheticClip';
import { S3Storage } from '../../src/storage/S3Storage';
import { TrackWriter } from '../../src/tracks/TrackWriter';

async function main(): Promise<void> {
  const o = JSON.parse(process.argv[2]) as { cfg: ConstructorParameters<typeof S3Storage>[0]; recordingId: string; roomId: string; credentials: { accessKeyId: string; secretAccessKey: string } };
  const storage = new S3Storage(o.cfg, { clientConfig: { credentials: o.credentials } });
  await storage.probe();
  const clip = await makeSyntheticClip(DEBIAN_FFMPEG, { index: 1, seconds: 2 }, logger);
  const sink = storage.createSink(o.recordingId, o.roomId);
  await sink.open();
  const rec = { id: o.recordingId, location: sink.location };
  const camMeta = { id: 't1', participantId: 'p1', name: 'Alice', sourceId: 'p1', kind: 'camera', codec: 'vp8' } as const;
  const micMeta = { id: 't2', participantId: 'p1', name: 'Alice', sourceId: 'p1', kind: 'microphone', codec: 'opus' } as const;
  const cam = new TrackWriter({ ...camMeta, target: storage.createTrackTarget(rec, camMeta, '001-camera-p1.webm') });
  const mic = new TrackWriter({ ...micMeta, target: storage.createTrackTarget(rec, micMeta, '002-microphone-p1.webm') });
  const t0 = Date.now();
  const checkpoint = () =>
    sink.updateManifest({ id: o.recordingId, roomId: o.roomId, status: 'recording', startedAt: new Date(t0).toISOString(), layout: 'grid', participants: [{ id: 'p1', name: 'Alice', joinedAt: new Date(t0).toISOString() }], tracks: [cam.snapshot(t0), mic.snapshot(t0)] });
  // The camera: 90 s of media (≈ 7 MB at the clip's 600 kbit/s) as fast as the writer takes it,
  // stamped as if it had arrived in real time.
  const frames = clip.videoFrames;
  let f = 0;
  const feed = (): void => {
    for (let k = 0; k < 60 && f < 90 * 30; k++, f++) {
      cam.video({ codec: 'vp8', data: frames[f % frames.length], rtpTimestamp: f * 3000, keyframe: f % frames.length === 0 }, t0 + (f * 1000) / 30);
    }
    if (f < 90 * 30) setImmediate(feed);
  };
  feed();
  let p = 0;
  setInterval(() => {
    const n = Math.floor((Date.now() - t0) / 20);
    for (; p < n; p++) mic.audio({ data: clip.opusPackets[p % clip.opusPackets.length], rtpTimestamp: p * 960 }, t0 + p * 20);
  }, 20);
  setInterval(() => {
    checkpoint();
    process.stdout.write(JSON.stringify({ event: 'progress', cameraFrames: f, micPackets: p }) + '\n');
  }, 500);
  checkpoint();
}

main().catch((err) => {
  process.stderr.write(`child failed: ${(err as Error).stack}\n`);
  process.exit(1);
});
