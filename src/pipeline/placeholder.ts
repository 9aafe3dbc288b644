import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FfmpegProcess } from './FfmpegProcess';
import { placeholderArgs } from '../../compositor/ffmpegArgs';
import type { Logger } from '../logger';
import { enqueueSpawn } from './spawnQueue';

/** Placeholder card colour: distinct from every participant colour and from the background. */
export const PLACEHOLDER_COLOUR = '#3A3F4B';

/** A flat frame of one colour, made in Node (used until the name card is rendered). */
export function solidFrame(w: number, h: number, hex: string): Buffer {
  const n = parseInt(hex.slice(1), 16);
  const r = (n >> 16) & 255, g = (n >> 8) & 255, b = n & 255;
  const y = Math.round(16 + 0.257 * r + 0.504 * g + 0.098 * b);
  const u = Math.round(128 - 0.148 * r - 0.291 * g + 0.439 * b);
  const v = Math.round(128 + 0.439 * r - 0.368 * g - 0.071 * b);
  const frame = Buffer.alloc((w * h * 3) / 2);
  frame.fill(y, 0, w * h);
  frame.fill(u, w * h, w * h * 1.25);
  frame.fill(v, w * h * 1.25);
  return frame;
}

/** Renders a name card (one raw frame) with FFmpeg's drawtext; a plain card if that fails. */
export async function renderNameCard(ffmpegPath: string, size: { w: number; h: number }, text: string, fontFile: string | null, logger: Logger): Promise<Buffer> {
  const fallback = solidFrame(size.w, size.h, PLACEHOLDER_COLOUR);
  const font = fontFile && fs.existsSync(fontFile) ? fontFile : null;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-card-'));
  try {
    const textFile = path.join(dir, 'name.txt');
    fs.writeFileSync(textFile, text.slice(0, 40));
    const p = await new Promise<FfmpegProcess>((resolve) =>
      enqueueSpawn(() => resolve(new FfmpegProcess({ ffmpegPath, args: placeholderArgs(size, PLACEHOLDER_COLOUR, font ? textFile : null, font), stopBy: 'eof', gracefulMs: 3000, logger })), 'low'),
    );
    const chunks: Buffer[] = [];
    p.stdout.on('data', (c: Buffer) => chunks.push(c));
    p.stdin.end();
    const exit = await p.exited;
    const out = Buffer.concat(chunks);
    if (exit.code !== 0 || out.length !== fallback.length) {
      logger.warn({ exit }, 'name card rendering failed; using a plain card');
      return fallback;
    }
    return out;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
