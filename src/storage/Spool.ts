import { promises as fsp } from 'node:fs';
import * as path from 'node:path';

/**
 * The local disk spool shared by every S3 sink of a process: one directory per recording
 * (`<spoolDir>/<recordingId>/`) holding the parts not yet acknowledged by S3, and one byte budget
 * (`spoolMaxBytes`) across all of them. A sink reserves bytes before it appends a fragment and
 * releases them when S3 has acknowledged the part; when the budget is spent, the write fails
 * (REC_ERR_UPLOAD) instead of filling the disk.
 */
export class Spool {
  readonly dir: string;
  readonly maxBytes: number;
  #used = 0;

  constructor(dir: string, maxBytes: number) {
    this.dir = path.resolve(dir);
    this.maxBytes = maxBytes;
  }

  get usedBytes(): number {
    return this.#used;
  }

  /** Take `bytes` from the budget; false (and nothing taken) when it does not fit. */
  reserve(bytes: number): boolean {
    if (this.#used + bytes > this.maxBytes) return false;
    this.#used += bytes;
    return true;
  }

  release(bytes: number): void {
    this.#used = Math.max(0, this.#used - bytes);
  }

  recordingDir(recordingId: string): string {
    return path.join(this.dir, recordingId);
  }

  /** Recording directories present on disk (live ones and ones left by a crash). */
  async listRecordingDirs(): Promise<string[]> {
    try {
      const entries = await fsp.readdir(this.dir, { withFileTypes: true });
      // Dot directories are not a recording's (`.tracks`: the per-track copies, recovered apart).
      return entries.filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => path.join(this.dir, e.name));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }
}
