import { TesseraError } from '../errors';
import type { RecordingInfo } from '../pipeline/types';
import type { Storage } from './Sink';

export interface RecordingPage {
  recordings: RecordingInfo[];
  /** Pass as `cursor` for the next (older) page; absent on the last page. */
  nextCursor?: string;
}

/**
 * The recordings a storage holds, by id and newest first, so that a REST lookup is a map read
 * instead of a scan: before it, every lookup read every manifest (on S3 a listing plus one GET
 * per manifest, three times for one Range request). Loaded by one scan (`listManifests`) on first
 * use, kept current by this process's own writes and deletes, and re-read at most every
 * `refreshMs` — only when asked for something it does not hold, or listed — so that recordings
 * another process wrote to the same bucket appear without letting requests force scans.
 */
export class RecordingIndex {
  readonly #storage: Pick<Storage, 'listManifests'>;
  readonly #refreshMs: number;
  readonly #now: () => number;
  #byId = new Map<string, RecordingInfo>();
  #loadedAt = -Infinity;
  #loading: Promise<void> | null = null;

  constructor(storage: Pick<Storage, 'listManifests'>, opts: { refreshMs: number; now?: () => number }) {
    this.#storage = storage;
    this.#refreshMs = opts.refreshMs;
    this.#now = opts.now ?? Date.now;
  }

  /** Reads the storage unless it was read within refreshMs (one read at a time). */
  async #refresh(force = false): Promise<void> {
    if (!force && this.#now() - this.#loadedAt < this.#refreshMs) return;
    if (this.#loading) return this.#loading;
    this.#loading = (async () => {
      try {
        const fresh = new Map<string, RecordingInfo>();
        // an expired recording the bucket's lifecycle has not deleted yet is gone for the API
        for (const m of (await this.#storage.listManifests()) as RecordingInfo[]) if (m && typeof m.id === 'string' && !m.expiredAt) fresh.set(m.id, strip(m));
        // written by this process while the scan ran: keep ours
        for (const [id, info] of this.#byId) if (!fresh.has(id) && this.#ownSince(info)) fresh.set(id, info);
        this.#byId = fresh;
        this.#loadedAt = this.#now();
      } finally {
        this.#loading = null;
      }
    })();
    return this.#loading;
  }

  #own = new WeakSet<RecordingInfo>();
  #ownSince(info: RecordingInfo): boolean {
    return this.#own.has(info);
  }

  /** Loads the index now (at start, so per-room counts are known before the first request). */
  load(): Promise<void> {
    return this.#refresh(true);
  }

  get loaded(): boolean {
    return this.#loadedAt > -Infinity;
  }

  /** A recording this process wrote (its final state) or changed. */
  put(info: RecordingInfo): void {
    const copy = strip(info);
    this.#own.add(copy);
    this.#byId.set(info.id, copy);
  }

  remove(id: string): void {
    this.#byId.delete(id);
  }

  async get(id: string): Promise<RecordingInfo | undefined> {
    if (!this.loaded) await this.#refresh(true);
    const hit = this.#byId.get(id);
    if (hit) return hit;
    await this.#refresh();
    return this.#byId.get(id);
  }

  /** Recordings of a room held now (synchronous: admission uses it). */
  countForRoom(roomId: string): number {
    let n = 0;
    for (const r of this.#byId.values()) if (r.roomId === roomId) n++;
    return n;
  }

  async all(): Promise<RecordingInfo[]> {
    await this.#refresh(!this.loaded);
    return [...this.#byId.values()];
  }
}

/** Newest first, by start time then id; a cursor is the last item's position. */
export function paginate(list: RecordingInfo[], opts: { limit: number; cursor?: string }): RecordingPage {
  const sorted = [...list].sort((a, b) => (a.startedAt !== b.startedAt ? (a.startedAt < b.startedAt ? 1 : -1) : a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
  let start = 0;
  if (opts.cursor) {
    const [at, id] = decodeCursor(opts.cursor);
    start = sorted.findIndex((r) => r.startedAt < at || (r.startedAt === at && r.id < id));
    if (start < 0) start = sorted.length;
  }
  const recordings = sorted.slice(start, start + opts.limit);
  const last = recordings[recordings.length - 1];
  return start + opts.limit < sorted.length && last ? { recordings, nextCursor: Buffer.from(`${last.startedAt}|${last.id}`).toString('base64url') } : { recordings };
}

export function decodeCursor(cursor: string): [string, string] {
  const s = Buffer.from(cursor, 'base64url').toString('utf8');
  const i = s.lastIndexOf('|');
  if (i < 0) throw new TesseraError('REC_ERR_BAD_REQUEST', 'cursor must be a nextCursor from a previous page');
  return [s.slice(0, i), s.slice(i + 1)];
}

/** A stored manifest as the API's Recording (the manifest's extra fields stay in storage). */
export function strip(m: RecordingInfo): RecordingInfo {
  const { id, roomId, status, startedAt, endedAt, availableAt, durationMs, bytes, layout, location, participants, error, retainUntil, legalHold, consent, tracks, renders } = m;
  const out: RecordingInfo = { id, roomId, status, startedAt, layout, location, participants };
  if (endedAt) out.endedAt = endedAt;
  if (availableAt) out.availableAt = availableAt;
  if (durationMs !== undefined) out.durationMs = durationMs;
  if (bytes !== undefined) out.bytes = bytes;
  if (error) out.error = error;
  if (retainUntil) out.retainUntil = retainUntil;
  if (legalHold) out.legalHold = true;
  if (consent) out.consent = consent;
  if (tracks?.length) out.tracks = tracks;
  if (renders?.length) out.renders = renders;
  return out;
}
