import { FramePool } from './FramePool';

/**
 * Cuts a raw video byte stream (arriving in pipe-sized chunks) into whole frames with exactly one
 * copy per byte: each chunk is copied straight into the frame being filled. Raw 720p30 is
 * 41 MB/s per stream and a recording moves several such streams through Node, so the obvious
 * concat-then-slice (two copies and a garbage buffer per frame) is measurable CPU.
 */
export class RawFrameReader {
  readonly pool: FramePool;
  #frame: Buffer;
  #filled = 0;

  constructor(readonly frameBytes: number) {
    this.pool = new FramePool(frameBytes);
    this.#frame = this.pool.take();
  }

  /**
   * Feed a chunk (copied at once: the caller may reuse it); calls `onFrame` for every frame it
   * completes. The frame comes from `pool` with one reference, the caller's (see FramePool).
   */
  push(chunk: Buffer, onFrame: (frame: Buffer) => void): void {
    let off = 0;
    while (off < chunk.length) {
      const n = Math.min(this.frameBytes - this.#filled, chunk.length - off);
      chunk.copy(this.#frame, this.#filled, off, off + n);
      this.#filled += n;
      off += n;
      if (this.#filled === this.frameBytes) {
        const done = this.#frame;
        this.#frame = this.pool.take();
        this.#filled = 0;
        onFrame(done);
      }
    }
  }

  /** Drop a partial frame (a new process starts a new stream). */
  reset(): void {
    this.#filled = 0;
  }
}
