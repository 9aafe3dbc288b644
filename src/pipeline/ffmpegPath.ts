import fs from 'node:fs';
import type { Config } from '../config';

/**
 * FFMPEG_PATH if set, else the binary of @ffmpeg-installer/ffmpeg (a 2018 4.1 static build).
 * npm 11 only runs approved install scripts; the package's postinstall is a `chmod u+x`, so we
 * make sure the bit is set ourselves rather than trust that it ran.
 */
export function resolveFfmpegPath(config: Pick<Config, 'ffmpegPath'>): string {
  if (config.ffmpegPath) return config.ffmpegPath;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const installer = require('@ffmpeg-installer/ffmpeg') as { path: string };
  try {
    fs.accessSync(installer.path, fs.constants.X_OK);
  } catch {
    fs.chmodSync(installer.path, 0o755);
  }
  return installer.path;
}
