import { ALL_FORMATS, EncodedPacketSink, FilePathSource, Input, type EncodedPacket } from 'mediabunny';
import type { OpusDecoder } from 'opus-decoder';
import { BLOCK_SAMPLES, SAMPLE_RATE } from '../pipeline/audio';
import type { Logger } from '../logger';

/** Packets further than this from where the last one ended are a gap (silence), not jitter. */
const CONTIGUOUS_SAMPLES = 96; // 2 ms: timestamps in the file are whole milliseconds

function newOpusDecoder(): OpusDecoder<48000> {
  // An ES module (see AudioDecoder): loaded when the first decoder is made.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const m = require('opus-decoder') as typeof import('opus-decoder');
  return new m.OpusDecoder({ channels: 1, sampleRate: 48000 });
}

/**
 * One recorded Opus track for a re-render: its packets read from the file (mediabunny), decoded
 * with the live recorder's decoder (libopus in WebAssembly), and placed on the recording's clock
 * by their timestamps, sample-exact: a gap in the timestamps (mute, DTX, a pause) is silence, as
 * live. Read block by block, forward only.
 */
export class TrackAudioReader {
  #input: Input;
  #packets: AsyncGenerator<EncodedPacket, void, unknown> | null = null;
  #decoder: OpusDecoder<48000> | null = null;
  /** Decoded audio not yet read, in order: each piece starts at recording sample `at`. */
  #pieces: { at: number; pcm: Int16Array }[] = [];
  /** Recording sample where the decoded audio ends so far. */
  #end = -Infinity;
  #startSample: number;
  #ended = false;
  errors = 0;
  #log: Logger;

  constructor(o: { file: string; startMs: number; logger: Logger }) {
    this.#input = new Input({ source: new FilePathSource(o.file), formats: ALL_FORMATS });
    this.#startSample = Math.round((o.startMs * SAMPLE_RATE) / 1000);
    this.#log = o.logger;
  }

  async open(): Promise<void> {
    const track = await this.#input.getPrimaryAudioTrack();
    if (!track) {
      this.#ended = true;
      return;
    }
    this.#packets = new EncodedPacketSink(track).packets();
    this.#decoder = newOpusDecoder();
    await this.#decoder.ready;
  }

  async #decodeNext(): Promise<void> {
    const next = this.#packets ? await this.#packets.next().catch((err: Error) => {
      // A file cut short (a crash) ends at its last whole block.
      this.#log.warn({ err: err.message }, 'audio track unreadable from here; it ends here');
      return { done: true as const, value: undefined };
    }) : { done: true as const, value: undefined };
    if (next.done) {
      this.#ended = true;
      return;
    }
    const p = next.value;
    let out;
    try {
      out = this.#decoder!.decodeFrame(p.data);
    } catch {
      this.errors++;
      return;
    }
    const n = out.samplesDecoded;
    if (n === 0) return;
    const mono = out.channelData[0];
    let at = this.#startSample + Math.round(p.timestamp * SAMPLE_RATE);
    // Whole-ms timestamps: a packet within 2 ms of where the last ended continues it. Further
    // on is a gap (silence); an overlap keeps what is there.
    if (Math.abs(at - this.#end) <= CONTIGUOUS_SAMPLES) at = this.#end;
    const skip = at < this.#end ? Math.min(n, this.#end - at) : 0;
    if (skip === n) return;
    const pcm = new Int16Array(n - skip);
    for (let i = skip; i < n; i++) {
      const s = mono[i];
      pcm[i - skip] = s >= 1 ? 32767 : s <= -1 ? -32768 : Math.round(s * 32767);
    }
    this.#pieces.push({ at: at + skip, pcm });
    this.#end = at + n;
  }

  /** The 960 samples of block `b` of the recording (s16le), or null where the track has nothing. */
  async block(b: number): Promise<Buffer | null> {
    const from = b * BLOCK_SAMPLES;
    const to = from + BLOCK_SAMPLES;
    while (!this.#ended && this.#end < to) await this.#decodeNext();
    // Pieces that end before this block are done with.
    while (this.#pieces.length && this.#pieces[0].at + this.#pieces[0].pcm.length <= from) this.#pieces.shift();
    let out: Int16Array | null = null;
    for (const piece of this.#pieces) {
      if (piece.at >= to) break;
      // s16le: Int16Array is the machine's order, little-endian on every platform Node runs on here.
      out ??= new Int16Array(BLOCK_SAMPLES);
      const a = Math.max(from, piece.at), z = Math.min(to, piece.at + piece.pcm.length);
      if (z > a) out.set(piece.pcm.subarray(a - piece.at, z - piece.at), a - from);
    }
    return out && Buffer.from(out.buffer, out.byteOffset, out.byteLength);
  }

  close(): void {
    const d = this.#decoder;
    this.#decoder = null;
    d?.free();
    void this.#packets?.return(undefined).catch(() => undefined);
    this.#input.dispose?.();
  }
}
