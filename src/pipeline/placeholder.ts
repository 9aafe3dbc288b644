import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FfmpegProcess } from './FfmpegProcess';
import { nameCardsArgs } from '../../compositor/ffmpegArgs';
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

interface CardRequest {
  text: string;
  resolve: (card: Buffer) => void;
}

/** Requests waiting for the next batch, per FFmpeg binary, font and size. */
const pending = new Map<string, { ffmpegPath: string; size: { w: number; h: number }; fontFile: string; logger: Logger; requests: CardRequest[] }>();
/**
 * Rendered cards by binary, font, size and text: a participant who rejoins, a recording
 * restarted in the same room, or the "waiting" card of every recording costs nothing. Bounded
 * (a camera card is 346 kB): least recently used out.
 */
const cache = new Map<string, Buffer>();
const CACHE_ENTRIES = 48;
/** Cards render at low CPU priority: they are cosmetics next to the decoders and the encoder. */
const CARD_NICE = 10;

function remember(key: string, card: Buffer): void {
  cache.delete(key);
  cache.set(key, card);
  while (cache.size > CACHE_ENTRIES) cache.delete(cache.keys().next().value!);
}

/**
 * Renders a name card (one raw frame) with FFmpeg's drawtext; a plain card without a font or if
 * rendering fails. Requests made while a render is queued share one FFmpeg process (see
 * nameCardsArgs), started through the spawn queue after every waiting decoder.
 */
export function renderNameCard(ffmpegPath: string, size: { w: number; h: number }, text: string, fontFile: string | null, logger: Logger): Promise<Buffer> {
  const font = fontFile && fs.existsSync(fontFile) ? fontFile : null;
  if (!font) return Promise.resolve(solidFrame(size.w, size.h, PLACEHOLDER_COLOUR));
  const label = text.slice(0, 40);
  const cacheKey = JSON.stringify([ffmpegPath, font, size.w, size.h, label]);
  const hit = cache.get(cacheKey);
  if (hit) {
    remember(cacheKey, hit);
    return Promise.resolve(hit);
  }
  return new Promise((resolve) => {
    const batchKey = JSON.stringify([ffmpegPath, font, size.w, size.h]);
    let batch = pending.get(batchKey);
    if (!batch) {
      batch = { ffmpegPath, size, fontFile: font, logger, requests: [] };
      pending.set(batchKey, batch);
      const b = batch;
      enqueueSpawn(() => {
        pending.delete(batchKey);
        void renderBatch(b.ffmpegPath, b.size, b.fontFile, b.requests, b.logger);
      }, 'low');
    }
    batch.requests.push({
      text: label,
      resolve: (card) => {
        if (card.length === (size.w * size.h * 3) / 2) remember(cacheKey, card);
        resolve(card);
      },
    });
  });
}

async function renderBatch(ffmpegPath: string, size: { w: number; h: number }, fontFile: string, requests: CardRequest[], logger: Logger): Promise<void> {
  const frameBytes = (size.w * size.h * 3) / 2;
  const fallback = () => solidFrame(size.w, size.h, PLACEHOLDER_COLOUR);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-card-'));
  try {
    // Names go through files (drawtext textfile=, expansion=none): no name can break the graph.
    const files = requests.map((r, k) => {
      const f = path.join(dir, `name-${k}.txt`);
      fs.writeFileSync(f, r.text);
      return f;
    });
    const p = new FfmpegProcess({ ffmpegPath, args: nameCardsArgs(size, PLACEHOLDER_COLOUR, files, fontFile), stopBy: 'eof', gracefulMs: 3000, logger });
    try {
      if (p.pid) os.setPriority(p.pid, CARD_NICE);
    } catch {
      // Already exited, or not permitted: it only matters under load.
    }
    const chunks: Buffer[] = [];
    p.stdout.on('data', (c: Buffer) => chunks.push(c));
    p.stdin.end();
    const exit = await p.exited;
    const out = Buffer.concat(chunks);
    if (exit.code !== 0 || out.length !== frameBytes * requests.length) {
      logger.warn({ exit, cards: requests.length, bytes: out.length }, 'name card rendering failed; using plain cards');
      for (const r of requests) r.resolve(fallback());
      return;
    }
    requests.forEach((r, k) => r.resolve(Buffer.from(out.subarray(k * frameBytes, (k + 1) * frameBytes))));
  } catch (err) {
    logger.warn({ err }, 'name card rendering failed; using plain cards');
    for (const r of requests) r.resolve(fallback());
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The plain 640×360 card (PLACEHOLDER_COLOUR) as one VP8 keyframe, made once with libvpx from
 * `solidFrame` (434 bytes; tests/unit/direct-feed.test.ts decodes it and checks its colour). A
 * direct epoch needs a card before anything else, and encoding one at start cost a recording an
 * FFmpeg start (0.3–0.5 s on a loaded machine).
 */
export const SOLID_CARD_VP8 = Buffer.from(
  'kDMAnQEqgAJoAQDHCIWFiIWEiAUCAnTyOjrUYeyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eyc4eycuAD++570q9XmU2kQQAA=',
  'base64',
);

/** VP8 keyframes made from raw cards, by the raw card (cards are cached and shared, see above). */
const vp8Cards = new WeakMap<Buffer, Promise<Buffer | null>>();

/**
 * A raw yuv420p card as one VP8 keyframe (what a direct epoch's input shows for a tile with no
 * live video; see DirectFeed). A flat card with a name is 1–3 kB. Null if FFmpeg failed.
 */
export function vp8Card(ffmpegPath: string, raw: Buffer, size: { w: number; h: number }, logger: Logger): Promise<Buffer | null> {
  let p = vp8Cards.get(raw);
  if (p) return p;
  p = (async () => {
    try {
      const proc = new FfmpegProcess({
        ffmpegPath,
        args: ['-hide_banner', '-nostats', '-loglevel', 'error', '-f', 'rawvideo', '-pix_fmt', 'yuv420p', '-s', `${size.w}x${size.h}`, '-i', 'pipe:0',
          '-frames:v', '1', '-c:v', 'libvpx', '-deadline', 'good', '-cpu-used', '4', '-b:v', '400k', '-g', '1', '-auto-alt-ref', '0', '-f', 'ivf', 'pipe:1'],
        stopBy: 'eof',
        gracefulMs: 3000,
        logger,
      });
      try {
        // Cosmetics, as the raw cards: below the epochs and the audio encoder.
        if (proc.pid) os.setPriority(proc.pid, CARD_NICE);
      } catch {
        // Already exited, or not permitted: it only matters under load.
      }
      const chunks: Buffer[] = [];
      proc.stdout.on('data', (c: Buffer) => chunks.push(c));
      proc.stdin.end(raw);
      const exit = await proc.exited;
      const ivf = Buffer.concat(chunks);
      if (exit.code !== 0 || ivf.length < 44) throw new Error(`code ${exit.code}: ${exit.stderr}`);
      const n = ivf.readUInt32LE(32);
      return Buffer.from(ivf.subarray(44, 44 + n));
    } catch (err) {
      logger.warn({ err }, 'VP8 card encoding failed');
      return null;
    }
  })();
  vp8Cards.set(raw, p);
  return p;
}
