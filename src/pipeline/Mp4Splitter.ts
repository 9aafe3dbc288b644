import type { Mp4Segment } from '../storage/Sink';

/**
 * Cuts the encoder's fragmented MP4 byte stream into segments on top-level box boundaries:
 * everything before the first `moof` is the init segment (ftyp + moov), then each `moof` starts a
 * new fragment, complete once its `mdat` is whole. Pure: push bytes in, get whole segments out.
 */
export class Mp4Splitter {
  #buf: Buffer[] = [];
  #bufLen = 0;
  #current: Buffer[] = [];
  #currentLen = 0;
  #index = 0;
  #sawMoof = false;

  /** Feed bytes; returns the segments completed by them. */
  push(chunk: Buffer): Mp4Segment[] {
    this.#buf.push(chunk);
    this.#bufLen += chunk.length;
    const out: Mp4Segment[] = [];
    for (;;) {
      const box = this.#takeBox();
      if (!box) break;
      const type = box.toString('latin1', 4, 8);
      // A moof starts a new segment (closing the init segment, or anything stray before it).
      if (type === 'moof' && this.#currentLen > 0) out.push(this.#emit());
      if (type === 'moof') this.#sawMoof = true;
      this.#current.push(box);
      this.#currentLen += box.length;
      // moof + mdat is a whole fragment: hand it on now, not when the next one begins.
      if (type === 'mdat' && this.#sawMoof) out.push(this.#emit());
    }
    return out;
  }

  /**
   * End of stream: whatever whole boxes are pending (the encoder's closing `mfra`). A `moof`
   * whose `mdat` never came whole (the encoder died mid-fragment) is dropped with any partial
   * bytes: written out, it would point past the end of the file.
   */
  end(): Mp4Segment[] {
    if (this.#currentLen === 0) return [];
    const types = this.#current.map((b) => b.toString('latin1', 4, 8));
    if (types.includes('moof') && !types.includes('mdat')) {
      this.#current = [];
      this.#currentLen = 0;
      return [];
    }
    return [this.#emit()];
  }

  /** Bytes held that do not yet form a whole box. */
  get pendingBytes(): number {
    return this.#bufLen;
  }

  #emit(): Mp4Segment {
    const data = Buffer.concat(this.#current, this.#currentLen);
    const seg: Mp4Segment = { kind: this.#index === 0 ? 'init' : 'fragment', data, index: this.#index };
    this.#index++;
    this.#current = [];
    this.#currentLen = 0;
    return seg;
  }

  #takeBox(): Buffer | null {
    if (this.#bufLen < 8) return null;
    if (this.#buf.length > 1) this.#buf = [Buffer.concat(this.#buf, this.#bufLen)];
    const b = this.#buf[0];
    let size = b.readUInt32BE(0);
    let header = 8;
    if (size === 1) {
      if (b.length < 16) return null;
      size = Number(b.readBigUInt64BE(8));
      header = 16;
    }
    if (size < header) throw new Error(`Mp4Splitter: invalid box size ${size}`);
    if (b.length < size) return null;
    const box = b.subarray(0, size);
    const rest = b.subarray(size);
    this.#buf = rest.length ? [rest] : [];
    this.#bufLen = rest.length;
    return Buffer.from(box);
  }
}
