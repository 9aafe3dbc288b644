/** Byte-identity checks of large objects (hundreds of MB) that say where they differ. */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';

const WINDOW = 1024 * 1024;

/**
 * md5 of every 1 MiB window of a byte stream fed in pieces. Comparing lists instead of one hash
 * says where two streams differ (and by how much in length) when a byte-identity check fails.
 */
export class WindowedMd5 {
  readonly windows: string[] = [];
  bytes = 0;
  #h = createHash('md5');
  #inWindow = 0;
  update(b: Uint8Array): void {
    for (let off = 0; off < b.length; ) {
      const n = Math.min(WINDOW - this.#inWindow, b.length - off);
      this.#h.update(b.subarray(off, off + n));
      off += n;
      this.#inWindow += n;
      this.bytes += n;
      if (this.#inWindow === WINDOW) this.#cut();
    }
  }
  done(): { bytes: number; windows: string[] } {
    if (this.#inWindow > 0) this.#cut();
    return { bytes: this.bytes, windows: this.windows };
  }
  #cut(): void {
    this.windows.push(this.#h.digest('hex'));
    this.#h = createHash('md5');
    this.#inWindow = 0;
  }
}

const windowedFile = (f: string): Promise<{ bytes: number; windows: string[] }> =>
  new Promise((resolve, reject) => {
    const h = new WindowedMd5();
    createReadStream(f).on('data', (d) => h.update(d as Buffer)).on('end', () => resolve(h.done())).on('error', reject);
  });

/** Equal, or where the first difference is (a readable failure for a 600 MB comparison). */
export async function expectSameBytes(objectFile: string, expected: { bytes: number; windows: string[] }): Promise<void> {
  const got = await windowedFile(objectFile);
  const first = got.windows.findIndex((w, i) => w !== expected.windows[i]);
  expect({ bytes: got.bytes, firstDifferentMiB: first === -1 && got.windows.length === expected.windows.length ? null : first })
    .toEqual({ bytes: expected.bytes, firstDifferentMiB: null });
}

export const expectedOf = (b: Buffer): { bytes: number; windows: string[] } => {
  const h = new WindowedMd5();
  h.update(b);
  return h.done();
};
