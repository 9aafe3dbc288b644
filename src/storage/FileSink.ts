import fs from 'node:fs';
import path from 'node:path';
import type { Mp4Segment, Sink, SinkResult } from './Sink';
import { writeAll } from './writeAll';
import type { RecordingLocation } from '../media/types';

/**
 * The default sink: appends segments to `<dir>/<key>` as they come (the file plays while it
 * grows, because it only ever holds whole fragments plus at most one being written), and writes
 * the manifest beside it atomically (temp file + rename).
 */
export class FileSink implements Sink {
  readonly location: RecordingLocation;
  #file: string;
  #fd: fs.promises.FileHandle | null = null;
  #bytes = 0;

  constructor(private readonly dir: string, key: string) {
    this.location = { kind: 'file', key };
    this.#file = path.join(dir, key);
  }

  get file(): string {
    return this.#file;
  }

  async open(): Promise<void> {
    await fs.promises.mkdir(path.dirname(this.#file), { recursive: true });
    this.#fd = await fs.promises.open(this.#file, 'w');
  }

  async write(segment: Mp4Segment): Promise<void> {
    if (!this.#fd) throw new Error('FileSink: write before open');
    await writeAll(this.#fd, segment.data);
    this.#bytes += segment.data.length;
  }

  async finish(manifest: object): Promise<SinkResult> {
    await this.#close(true);
    await writeManifest(this.#file, manifest);
    return { bytes: this.#bytes, location: this.location };
  }

  async abort(_reason: Error, manifest: object): Promise<void> {
    try {
      await this.#close(false);
      await writeManifest(this.#file, manifest);
    } catch {
      /* abort never throws: the manifest may be missing, the media stays as written */
    }
  }

  get bytes(): number {
    return this.#bytes;
  }

  async #close(sync: boolean): Promise<void> {
    const fd = this.#fd;
    this.#fd = null;
    if (!fd) return;
    if (sync) await fd.sync();
    await fd.close();
  }
}

export function manifestPath(mediaFile: string): string {
  return mediaFile.replace(/\.mp4$/, '') + '.json';
}

export async function writeManifest(mediaFile: string, manifest: object): Promise<void> {
  const target = manifestPath(mediaFile);
  const tmp = `${target}.tmp-${process.pid}`;
  await fs.promises.writeFile(tmp, JSON.stringify(manifest, null, 2) + '\n');
  await fs.promises.rename(tmp, target);
}
