import { loadConfig } from '../../src/config';
import { logger } from '../../src/logger';
import { makeSyntheticClip, type SyntheticClip } from '../../src/media/SyntheticClip';
import type { VideoCodec } from '../../src/media/types';
import { WeriftParticipant, type WeriftParticipantInit } from '../../src/rtc/WeriftParticipant';
import { TesseraServer } from '../../src/server/TesseraServer';
import { Recorder } from '../../src/pipeline/Recorder';
import { FileStorage } from '../../src/storage/FileStorage';
import type { RecorderApi } from '../../src/server/recorderApi';

export const FFMPEG = process.env.FFMPEG_PATH ?? '/usr/bin/ffmpeg';

const clips = new Map<string, Promise<SyntheticClip>>();
/** Small synthetic clips (cached per index+codec) for werift participants in tests. */
export function clipFor(index: number, codec: VideoCodec = 'vp8'): Promise<SyntheticClip> {
  const key = `${index}:${codec}`;
  let c = clips.get(key);
  if (!c) {
    c = makeSyntheticClip(FFMPEG, { index, codec, seconds: 2, width: 320, height: 180, fps: 15 }, logger);
    clips.set(key, c);
  }
  return c;
}

export async function startServer(recorder: RecorderApi, env: Record<string, string> = {}): Promise<TesseraServer> {
  const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', ...env });
  const server = new TesseraServer({ config, recorder, logger, rtc: { connectTimeoutMs: 15_000 } });
  await server.listen(0, '127.0.0.1');
  return server;
}

export async function participant(url: string, roomId: string, name: string, index: number, extra: Partial<WeriftParticipantInit> & { codec?: VideoCodec } = {}): Promise<WeriftParticipant> {
  const clip = await clipFor(index, extra.codec);
  return new WeriftParticipant({ url, roomId, name, clip, logger, ...extra });
}

export async function until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A server recording into `recordingsDir` with the real Recorder and file storage, at 640×360
 * 15 fps (small, for tests of what is in the picture). `close()` drains it and its storage.
 */
export async function startRecordingServer(recordingsDir: string, env: Record<string, string> = {}): Promise<{ server: TesseraServer; storage: FileStorage; close: () => Promise<void> }> {
  const config = loadConfig({ ...process.env, PORT: '0', HOST: '127.0.0.1', RECORDINGS_DIR: recordingsDir, VIDEO_WIDTH: '640', VIDEO_HEIGHT: '360', VIDEO_FPS: '15', ...env });
  const storage = new FileStorage(config.recordingsDir);
  const server = new TesseraServer({ config, recorder: new Recorder({ config, storage, logger }), logger, rtc: { connectTimeoutMs: 15_000 } });
  await server.listen(0, '127.0.0.1');
  return { server, storage, close: async () => (await server.drain(), await storage.close()) };
}
