import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FfmpegProcess } from './FfmpegProcess';
import { nameCardsArgs } from '../../compositor/ffmpegArgs';
import type { Logger } from '../logger';
import { enqueueSpawn } from './spawnQueue';
import { parseIvf, vp8KeyframeInfo } from '../media/ivf';
import { AccessUnitSplitter, avcPictureSize, isKeyframe } from '../media/annexb';
import type { VideoCodec } from '../media/types';

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
  resolve: (card: Buffer | null) => void;
}

/**
 * A card as one raw yuv420p frame (raw tiles), or as one keyframe of a direct epoch's input codec
 * (what the input shows for a tile with no live video; see DirectFeed; 1–5 kB).
 */
export type CardFormat = 'raw' | VideoCodec;

/** A source's name card as a keyframe for each codec a direct epoch's input may take (null: not rendered). */
export type CodedCards = Record<VideoCodec, Buffer | null>;

/** Requests waiting for the next batch, per FFmpeg binary, font, size and format. */
const pending = new Map<string, { ffmpegPath: string; size: { w: number; h: number }; fontFile: string; format: CardFormat; logger: Logger; requests: CardRequest[] }>();
/**
 * Rendered cards by binary, font, size, format and text: a participant who rejoins, a recording
 * restarted in the same room, or the "waiting" card of every recording costs nothing. Bounded
 * (a raw camera card is 346 kB): least recently used out.
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
export async function renderNameCard(ffmpegPath: string, size: { w: number; h: number }, text: string, fontFile: string | null, logger: Logger): Promise<Buffer> {
  return (await renderCard(ffmpegPath, size, text, fontFile, 'raw', logger)) ?? solidFrame(size.w, size.h, PLACEHOLDER_COLOUR);
}

/**
 * The same card as one keyframe of `codec` (VP8, or H.264 for a source that sends it), rendered
 * and encoded by one FFmpeg for the whole batch (a raw render plus one libvpx run per card cost
 * 0.06 CPU-seconds each: 0.36 for a room of four and the waiting card, against 0.07 in one
 * process). Null without a font or if rendering failed: the caller shows the plain card
 * (SOLID_CARDS).
 */
export function renderCodedNameCard(ffmpegPath: string, size: { w: number; h: number }, text: string, fontFile: string | null, codec: VideoCodec, logger: Logger): Promise<Buffer | null> {
  return renderCard(ffmpegPath, size, text, fontFile, codec, logger);
}

function renderCard(ffmpegPath: string, size: { w: number; h: number }, text: string, fontFile: string | null, format: CardFormat, logger: Logger): Promise<Buffer | null> {
  const font = fontFile && fs.existsSync(fontFile) ? fontFile : null;
  if (!font) return Promise.resolve(null);
  const label = text.slice(0, 40);
  const cacheKey = JSON.stringify([ffmpegPath, font, size.w, size.h, format, label]);
  const hit = cache.get(cacheKey);
  if (hit) {
    remember(cacheKey, hit);
    return Promise.resolve(hit);
  }
  return new Promise((resolve) => {
    const batchKey = JSON.stringify([ffmpegPath, font, size.w, size.h, format]);
    let batch = pending.get(batchKey);
    if (!batch) {
      batch = { ffmpegPath, size, fontFile: font, format, logger, requests: [] };
      pending.set(batchKey, batch);
      const b = batch;
      enqueueSpawn(() => {
        pending.delete(batchKey);
        void renderBatch(b.ffmpegPath, b.size, b.fontFile, b.format, b.requests, b.logger);
      }, 'low');
    }
    batch.requests.push({
      text: label,
      resolve: (card) => {
        if (card) remember(cacheKey, card);
        resolve(card);
      },
    });
  });
}

/** The batch's output as one card per request, or null if it is not exactly that. */
function splitCards(out: Buffer, size: { w: number; h: number }, format: CardFormat, n: number): Buffer[] | null {
  if (format === 'raw') {
    const frameBytes = (size.w * size.h * 3) / 2;
    if (out.length !== frameBytes * n) return null;
    return Array.from({ length: n }, (_, k) => Buffer.from(out.subarray(k * frameBytes, (k + 1) * frameBytes)));
  }
  if (format === 'h264') {
    const split = new AccessUnitSplitter();
    const aus = split.push(out);
    const last = split.end();
    if (last) aus.push(last);
    return aus.length === n && aus.every((au) => isKeyframe(au) && avcPictureSize(au)) ? aus : null;
  }
  try {
    const { frames } = parseIvf(out);
    if (frames.length !== n || !frames.every((f) => vp8KeyframeInfo(f))) return null;
    return frames;
  } catch {
    return null;
  }
}

async function renderBatch(ffmpegPath: string, size: { w: number; h: number }, fontFile: string, format: CardFormat, requests: CardRequest[], logger: Logger): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-card-'));
  try {
    // Names go through files (drawtext textfile=, expansion=none): no name can break the graph.
    const files = requests.map((r, k) => {
      const f = path.join(dir, `name-${k}.txt`);
      fs.writeFileSync(f, r.text);
      return f;
    });
    const p = new FfmpegProcess({ ffmpegPath, args: nameCardsArgs(size, PLACEHOLDER_COLOUR, files, fontFile, format), stopBy: 'eof', gracefulMs: 3000, logger });
    try {
      if (p.pid) os.setPriority(p.pid, CARD_NICE);
    } catch {
      // Already exited, or not permitted: it only matters under load.
    }
    const chunks: Buffer[] = [];
    p.stdout.on('data', (c: Buffer) => chunks.push(c));
    p.stdin.end();
    const exit = await p.exited;
    const cards = exit.code === 0 ? splitCards(Buffer.concat(chunks), size, format, requests.length) : null;
    if (!cards) {
      logger.warn({ exit, cards: requests.length, format }, 'name card rendering failed; using plain cards');
      for (const r of requests) r.resolve(null);
      return;
    }
    requests.forEach((r, k) => r.resolve(cards[k]));
  } catch (err) {
    logger.warn({ err }, 'name card rendering failed; using plain cards');
    for (const r of requests) r.resolve(null);
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

/**
 * The same plain card as one H.264 IDR (with its SPS and PPS; x264 constrained baseline, its SEI
 * left out: 757 bytes), for a direct epoch's H.264 inputs (tests/unit/direct-feed.test.ts decodes
 * it with both builds and checks its colour).
 */
export const SOLID_CARD_H264 = Buffer.from(
  'AAAAAQkQAAAAAWdCwB7cCgL/lhAAAAMAEAAAAwMg8WL4AAAAAWjOD8gAAAFliIQ6EYoAAh+xwAxwZOTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk66666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666668A==',
  'base64',
);

/** The plain card for each codec a direct epoch's input may take. */
export const SOLID_CARDS: Record<VideoCodec, Buffer> = { vp8: SOLID_CARD_VP8, h264: SOLID_CARD_H264 };
