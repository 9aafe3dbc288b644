/**
 * A recorder process for the crash test: FFmpeg (live, -re) → Mp4Splitter → S3Sink, printing one
 * JSON line per written fragment. The test SIGKILLs it mid-recording. argv[2] is a JSON object:
 * { cfg: Config['s3'], recordingId, roomId, seconds, bitrate, credentials? }.
 */
import { spawn } from 'node:child_process';
import { Mp4Splitter } from '../../src/pipeline/Mp4Splitter';
import { fragmentEndMs, parseInit, type InitInfo } from '../../src/storage/s3/fmp4';
import { S3Storage } from '../../src/storage/S3Storage';
import { FFMPEG, TEST_CREDENTIALS } from './s3fixtures';

async function main(): Promise<void> {
  const o = JSON.parse(process.argv[2]) as {
    cfg: ConstructorParameters<typeof S3Storage>[0];
    recordingId: string;
    roomId: string;
    seconds: number;
    bitrate: string;
    credentials?: { accessKeyId: string; secretAccessKey: string };
  };
  const storage = new S3Storage(o.cfg, { clientConfig: { credentials: o.credentials ?? TEST_CREDENTIALS } });
  // As the server does at start: learn what the store supports (tags, part numbers) first.
  await storage.probe();
  const sink = storage.createSink(o.recordingId, o.roomId);
  await sink.open();
  sink.updateManifest({ id: o.recordingId, roomId: o.roomId, status: 'recording', startedAt: new Date().toISOString(), layout: 'grid', participants: [{ id: 'p1', name: 'Alice', joinedAt: new Date().toISOString() }] });
  const br = o.bitrate;
  const ff = spawn(FFMPEG, [
    '-v', 'error', '-re', '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=30', '-re', '-f', 'lavfi', '-i', 'sine=frequency=440',
    '-t', String(o.seconds), '-c:v', 'libx264', '-preset', 'ultrafast', '-b:v', br, '-minrate', br, '-maxrate', br, '-bufsize', '1M',
    '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-movflags', 'frag_keyframe+empty_moov+default_base_moof', '-g', '30', '-f', 'mp4', 'pipe:1',
  ], { stdio: ['ignore', 'pipe', 'inherit'] });
  process.stdout.write(JSON.stringify({ event: 'started', ffmpegPid: ff.pid, uploadId: sink.uploadId }) + '\n');
  const splitter = new Mp4Splitter();
  let init: InitInfo | null = null;
  let bytes = 0;
  let chain = Promise.resolve();
  ff.stdout.on('data', (chunk: Buffer) => {
    for (const seg of splitter.push(chunk)) {
      chain = chain.then(async () => {
        if (seg.kind === 'init') init = parseInit(seg.data);
        await sink.write(seg);
        bytes += seg.data.length;
        const endMs = seg.kind === 'fragment' && init ? fragmentEndMs(seg.data, init) : 0;
        process.stdout.write(JSON.stringify({ event: 'wrote', index: seg.index, bytes, endMs, ...sink.stats }) + '\n');
      });
    }
  });
  await new Promise((r) => ff.on('close', r));
  await chain;
  process.stdout.write(JSON.stringify({ event: 'ffmpeg-ended' }) + '\n');
}

main().catch((err) => {
  process.stderr.write(`child failed: ${(err as Error).stack}\n`);
  process.exit(1);
});
