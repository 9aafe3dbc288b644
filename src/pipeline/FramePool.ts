/**
 * Raw frame buffers, reused. A recording's worker moves 40–80 MB/s of raw video (decoders →
 * pacer → epoch encoder); allocating a Buffer per frame made V8 run several full mark-compact
 * collections a second, because external memory grew that fast (docs/workers.md). A frame from
 * a pool carries a reference count: whoever keeps it (a decoder's queue, the picture a tile shows,
 * a write to an encoder in flight) holds one reference and releases it when done, and the last
 * release returns the buffer to its pool. Buffers that are not from a pool (name cards, solid
 * fillers) pass through retain/release untouched.
 */
const owners = new WeakMap<Buffer, { pool: FramePool; refs: number }>();

export class FramePool {
  readonly #free: Buffer[] = [];
  /** Buffers allocated since the pool was made (for tests and figures). */
  allocated = 0;

  constructor(
    readonly frameBytes: number,
    /** Free buffers kept at most; more are left to the garbage collector. */
    readonly maxFree = 8,
  ) {}

  /** A buffer of frameBytes (contents undefined), with one reference: the caller's. */
  take(): Buffer {
    let b = this.#free.pop();
    if (!b) {
      b = Buffer.allocUnsafeSlow(this.frameBytes);
      this.allocated++;
    }
    owners.set(b, { pool: this, refs: 1 });
    return b;
  }

  get freeCount(): number {
    return this.#free.length;
  }

  /** @internal the last reference went */
  put(b: Buffer): void {
    if (this.#free.length < this.maxFree) this.#free.push(b);
  }
}

/** One more holder of `frame` (no-op for a buffer that is not from a pool). */
export function retainFrame(frame: Buffer): void {
  const o = owners.get(frame);
  if (o) o.refs++;
}

/** A holder lets go of `frame`; the last one returns it to its pool. */
export function releaseFrame(frame: Buffer): void {
  const o = owners.get(frame);
  if (!o) return;
  if (--o.refs > 0) return;
  owners.delete(frame);
  o.pool.put(frame);
}
