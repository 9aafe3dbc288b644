import fs from 'node:fs';
import path from 'node:path';
import { FileSink, manifestPath, writeManifest } from './FileSink';
import type { MediaRange, Storage } from './Sink';
import type { RecordingLocation } from '../media/types';
import { FileTrackTarget } from './FileTrackTarget';
import { rendersPrefixOf, tracksPrefixOf } from './trackKeys';
import type { TrackMeta, TrackTarget } from '../tracks/TrackWriter';

/**
 * Local directory storage (the default): `<dir>/<roomId>/<recordingId>.mp4` + `.json`, and when
 * asked for, `<recordingId>.tracks/` (one file per track) and `<recordingId>.renders/`.
 */
export class FileStorage implements Storage {
  readonly kind = 'file' as const;
  readonly dir: string;

  constructor(dir: string) {
    this.dir = path.resolve(dir);
    fs.mkdirSync(this.dir, { recursive: true });
  }

  createSink(recordingId: string, roomId: string): FileSink {
    return new FileSink(this.dir, `${roomId}/${recordingId}.mp4`);
  }

  createTrackTarget(recording: { id: string; location: RecordingLocation }, _track: TrackMeta, file: string): TrackTarget {
    const key = tracksPrefixOf(recording.location.key) + file;
    this.#path({ kind: 'file', key }); // refuses a key outside the directory
    return new FileTrackTarget(this.dir, key);
  }

  #path(location: RecordingLocation): string {
    const p = path.resolve(this.dir, location.key);
    if (!p.startsWith(this.dir + path.sep)) throw new Error('recording key escapes the recordings directory');
    return p;
  }

  async listManifests(): Promise<object[]> {
    const out: object[] = [];
    let rooms: string[] = [];
    try {
      rooms = await fs.promises.readdir(this.dir);
    } catch {
      return out;
    }
    for (const room of rooms) {
      if (room.startsWith('.')) continue;
      const roomDir = path.join(this.dir, room);
      let files: string[];
      try {
        files = await fs.promises.readdir(roomDir);
      } catch {
        continue;
      }
      for (const f of files.filter((f) => f.endsWith('.json'))) {
        try {
          out.push(JSON.parse(await fs.promises.readFile(path.join(roomDir, f), 'utf8')));
        } catch {
          /* a torn or foreign file is not a recording */
        }
      }
    }
    return out;
  }

  async openMedia(location: RecordingLocation, range?: MediaRange) {
    const file = this.#path(location);
    let size: number;
    try {
      size = (await fs.promises.stat(file)).size;
    } catch {
      return null;
    }
    const stream = range ? fs.createReadStream(file, { start: range.start, end: range.end ?? size - 1 }) : fs.createReadStream(file);
    return { size, stream };
  }

  async deleteRecording(location: RecordingLocation): Promise<void> {
    const file = this.#path(location);
    await fs.promises.rm(file, { force: true });
    await fs.promises.rm(manifestPath(file), { force: true });
    for (const dir of [tracksPrefixOf(location.key), rendersPrefixOf(location.key)]) {
      await fs.promises.rm(this.#path({ kind: 'file', key: dir }), { recursive: true, force: true });
    }
  }

  /** A finished file (a re-render) copied in whole, then renamed: never seen half-written. */
  async putFile(location: RecordingLocation, file: string): Promise<number> {
    const target = this.#path(location);
    await fs.promises.mkdir(path.dirname(target), { recursive: true });
    const tmp = `${target}.tmp-${process.pid}`;
    await fs.promises.copyFile(file, tmp);
    const fd = await fs.promises.open(tmp, 'r+');
    try {
      await fd.sync();
    } finally {
      await fd.close();
    }
    await fs.promises.rename(tmp, target);
    return (await fs.promises.stat(target)).size;
  }

  /** Merges `patch` into a recording's manifest (retention, legal hold, consent). */
  async updateManifest(location: RecordingLocation, patch: object): Promise<void> {
    const file = this.#path(location);
    const current = JSON.parse(await fs.promises.readFile(manifestPath(file), 'utf8')) as object;
    await writeManifest(file, { ...current, ...patch });
  }

  /** The audit trail: `<dir>/.audit/audit.jsonl`, appended to (O_APPEND: whole lines). */
  async appendAudit(line: string): Promise<void> {
    await fs.promises.mkdir(path.join(this.dir, '.audit'), { recursive: true });
    await fs.promises.appendFile(path.join(this.dir, '.audit', 'audit.jsonl'), line + '\n', { mode: 0o600 });
  }

  async readAudit(): Promise<string[]> {
    try {
      return (await fs.promises.readFile(path.join(this.dir, '.audit', 'audit.jsonl'), 'utf8')).split('\n').filter((l) => l.length);
    } catch {
      return [];
    }
  }

  async close(): Promise<void> {
    /* nothing held */
  }
}
