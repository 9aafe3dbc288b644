import fs from 'node:fs';
import path from 'node:path';
import type { RecordingLocation } from '../media/types';
import type { TrackTarget } from '../tracks/TrackWriter';

/**
 * A track written to a local file as it arrives (append-only Matroska: the file is readable
 * while it grows, and after a crash up to its last whole block). Writes are queued on one
 * stream; finish() flushes and fsyncs.
 */
export class FileTrackTarget implements TrackTarget {
  readonly location: RecordingLocation;
  #file: string;
  #stream: fs.WriteStream;
  #bytes = 0;
  #error: Error | null = null;

  constructor(dir: string, key: string) {
    this.location = { kind: 'file', key };
    this.#file = path.join(dir, key);
    fs.mkdirSync(path.dirname(this.#file), { recursive: true });
    this.#stream = fs.createWriteStream(this.#file, { flags: 'w' });
    this.#stream.on('error', (err) => (this.#error ??= err));
  }

  write(data: Buffer): void {
    if (this.#error || this.#stream.destroyed) return;
    this.#bytes += data.length;
    this.#stream.write(data);
  }

  async finish(): Promise<number> {
    await this.#close();
    if (this.#error) throw this.#error;
    const fd = await fs.promises.open(this.#file, 'r+');
    try {
      await fd.sync();
    } finally {
      await fd.close();
    }
    return this.#bytes;
  }

  async abort(): Promise<void> {
    await this.#close().catch(() => undefined);
  }

  #close(): Promise<void> {
    if (this.#stream.closed || this.#stream.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      this.#stream.end(() => resolve());
      this.#stream.once('error', () => resolve());
    });
  }
}
