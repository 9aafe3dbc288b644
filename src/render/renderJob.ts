import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { TesseraError, toTesseraError } from '../errors';
import type { Logger } from '../logger';
import type { Manifest, RenderInfo } from '../pipeline/types';
import type { Storage } from '../storage/Sink';
import { FileStorage } from '../storage/FileStorage';
import { rendersPrefixOf } from '../storage/trackKeys';
import type { RecordingLocation } from '../media/types';
import type { TrackInfo } from '../tracks/TrackWriter';
import type { RenderOptions, RenderResult } from './Renderer';

/** The manifest beside a recording's MP4, read through the storage (file or S3). */
export async function readManifest(storage: Storage, location: RecordingLocation): Promise<Manifest | null> {
  const opened = await storage.openMedia({ ...location, key: location.key.replace(/\.mp4$/, '') + '.json' }).catch(() => null);
  if (!opened) return null;
  const chunks: Buffer[] = [];
  for await (const c of opened.stream as AsyncIterable<Buffer>) chunks.push(Buffer.from(c));
  return JSON.parse(Buffer.concat(chunks).toString('utf8')) as Manifest;
}

/** Why a recording cannot be re-rendered now, as the error the caller gets; null if it can. */
export function renderRefusal(m: Manifest): TesseraError | null {
  if (m.status !== 'available' && m.status !== 'failed') return new TesseraError('REC_ERR_ALREADY_RECORDING', `recording ${m.id} is still ${m.status}; re-render it once it has finished`);
  if (!(m.tracks ?? []).some((t) => t.startedAt && t.packets > 0)) return new TesseraError('REC_ERR_NO_TRACKS', `recording ${m.id} has no tracks to render from (record with tracks: true)`);
  return null;
}

/** The next render's id for a layout: `<layout>-<n>`, n counting that layout's renders from 1. */
export function nextRenderId(m: Pick<Manifest, 'renders'>, layout: string): string {
  let n = 1;
  const taken = new Set((m.renders ?? []).map((r) => r.id));
  while (taken.has(`${layout}-${n}`)) n++;
  return `${layout}-${n}`;
}

/** A new render entry (`rendering`) of a recording, stored as `<room>/<id>.renders/<renderId>.mp4`. */
export function newRender(m: Manifest, layout: string, renderId = nextRenderId(m, layout)): RenderInfo {
  return { id: renderId, layout, status: 'rendering', createdAt: new Date().toISOString(), location: { ...m.location, key: rendersPrefixOf(m.location.key) + `${renderId}.mp4` } };
}

/**
 * Puts `render` into the recording's manifest, replacing the entry with its id (read fresh before
 * each write, so two renders of one recording keep each other's entries). Returns the list.
 */
export async function saveRender(storage: Storage, location: RecordingLocation, render: RenderInfo): Promise<RenderInfo[]> {
  if (!storage.updateManifest) throw new TesseraError('REC_ERR_INTERNAL', 'this storage cannot list renders');
  const m = await readManifest(storage, location);
  if (!m) throw new TesseraError('REC_ERR_NOT_FOUND', 'the recording is gone');
  const renders = [...(m.renders ?? []).filter((r) => r.id !== render.id), render];
  await storage.updateManifest(location, { renders });
  return renders;
}

/** Runs a render from local files (in this process, or in a child: see RenderJobs). */
export type RenderRunner = (o: Omit<RenderOptions, 'presets' | 'config' | 'ffmpegPath' | 'logger'>) => Promise<RenderResult>;

/**
 * A re-render of a stored recording, start to end: its tracks made local (file storage: read in
 * place; S3: downloaded to a scratch directory), composed by `run`, the MP4 stored beside the
 * recording and its entry in the manifest moved to `available` (or `failed`, with the error).
 * `render` must already be in the manifest as `rendering`. Resolves to the final entry; never throws.
 */
export async function runStoredRender(o: {
  storage: Storage;
  manifest: Manifest;
  render: RenderInfo;
  run: RenderRunner;
  logger: Logger;
  scratchDir?: string;
  /** Told of every change of the entry (the server's index). */
  onChange?: (renders: RenderInfo[]) => void;
  /** Write the MP4 to this local file instead of storing and listing it (the CLI's --out). */
  outFile?: string;
}): Promise<RenderInfo> {
  const { storage, manifest: m } = o;
  const log = o.logger.child({ recordingId: m.id, renderId: o.render.id });
  const scratch = fs.mkdtempSync(path.join(o.scratchDir ?? os.tmpdir(), `tessera-render-${process.pid}-`));
  let final: RenderInfo;
  try {
    const local = new Map<string, string>();
    const tracks = (m.tracks ?? []).filter((t) => t.startedAt && t.packets > 0);
    for (const t of tracks) local.set(t.id, await localTrack(storage, t, scratch));
    const out = path.join(scratch, 'render.mp4');
    const result = await o.run({ manifest: m, trackFile: (t: TrackInfo) => local.get(t.id)!, layout: o.render.layout, out, workDir: path.join(scratch, 'work') });
    if (o.outFile) {
      fs.mkdirSync(path.dirname(path.resolve(o.outFile)), { recursive: true });
      fs.copyFileSync(out, o.outFile);
      return { ...o.render, status: 'available', availableAt: new Date().toISOString(), location: { kind: 'file', key: path.resolve(o.outFile) }, bytes: result.bytes, durationMs: result.durationMs };
    }
    if (!storage.putFile) throw new TesseraError('REC_ERR_INTERNAL', 'this storage cannot keep renders');
    // The recording may have been deleted meanwhile: then the render goes with it.
    if (!(await readManifest(storage, m.location))) throw new TesseraError('REC_ERR_NOT_FOUND', 'the recording was deleted while it was rendered');
    const bytes = await storage.putFile(o.render.location, out, 'video/mp4');
    final = { ...o.render, status: 'available', availableAt: new Date().toISOString(), bytes, durationMs: result.durationMs };
    log.info({ bytes, durationMs: result.durationMs, speed: +result.speed.toFixed(2) }, 'render available');
  } catch (err) {
    const e = toTesseraError(err);
    log.error({ code: e.code, err: e.message }, 'render failed');
    if (o.outFile) return { ...o.render, status: 'failed', error: e.toJSON() };
    final = { ...o.render, status: 'failed', error: e.toJSON() };
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
  try {
    // (Saved first: `o.onChange?.(await …)` would skip the save when there is no listener.)
    const renders = await saveRender(storage, m.location, final);
    o.onChange?.(renders);
  } catch (err) {
    // A recording deleted in the moment between the check above and here leaves this render's
    // MP4 under its `.renders/` prefix: rare, and a later delete of the same prefix takes it.
    log.warn({ err: (err as Error).message }, 'render entry not saved (the recording is gone?)');
  }
  return final;
}

/** A track as a local file: in place for file storage, else downloaded into `dir`. */
async function localTrack(storage: Storage, t: TrackInfo, dir: string): Promise<string> {
  if (storage instanceof FileStorage) {
    const file = path.join(storage.dir, t.location.key);
    // A missing track would render as its name card all along: say so instead.
    if (!fs.existsSync(file)) throw new TesseraError('REC_ERR_NOT_FOUND', `track ${t.id} is missing from storage (${t.location.key})`);
    return file;
  }
  const opened = await storage.openMedia(t.location);
  if (!opened) throw new TesseraError('REC_ERR_NOT_FOUND', `track ${t.id} is missing from storage (${t.location.key})`);
  const file = path.join(dir, `${t.id}.${t.container}`);
  await pipeline(opened.stream as NodeJS.ReadableStream, fs.createWriteStream(file));
  return file;
}
