import { EventEmitter } from 'node:events';
import type { OpusDecoder } from 'opus-decoder';
import { PcmJitterBuffer } from './audio';
import type { DecoderEvents } from './SupervisedDecoder';
import type { OpusPacket } from '../media/types';
import type { Logger } from '../logger';

/**
 * `opus-decoder` is an ES module, loaded when the first decoder is made: Node ≥ 20.19 requires ES
 * modules, and modules that only import this file (in tests that never decode) do not load it.
 */
let opusModule: typeof import('opus-decoder') | null = null;
function newOpusDecoder(): OpusDecoder<48000> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  opusModule ??= require('opus-decoder') as typeof import('opus-decoder');
  return new opusModule.OpusDecoder({ channels: 1, sampleRate: 48000 });
}

/** Opus packets that arrive before the decoder's WebAssembly is compiled (~2 s at 20 ms). */
const MAX_EARLY_PACKETS = 100;

/**
 * Decodes one source's Opus into 48 kHz mono PCM for the mixer, in this process: libopus
 * compiled to WebAssembly (`opus-decoder`). It used to be an FFmpeg per source fed Ogg pages;
 * audio is light enough (tens of microseconds a packet) that the process cost more than the
 * decoding — about 12–15 MB of memory each (a third of a 4-person recording's FFmpeg memory
 * beside the encoders), a process start per participant, and a pipe and an Ogg page per packet.
 * A packet libopus rejects is counted and skipped; gaps (loss, DTX, a muted microphone) leave
 * the jitter buffer dry, and the mixer hears silence for this source only.
 */
export class AudioDecoder extends EventEmitter<DecoderEvents> {
  readonly buffer = new PcmJitterBuffer();
  /** Packets libopus could not decode (junk or damaged): skipped, never fatal. */
  errors = 0;
  readonly restarts = 0;
  #decoder: OpusDecoder<48000> | null = newOpusDecoder();
  #ready = false;
  #early: Buffer[] = [];
  #closed = false;
  readonly #log: Logger;

  constructor(opts: { logger: Logger }) {
    super();
    this.#log = opts.logger;
    this.#decoder!.ready.then(
      () => {
        this.#ready = true;
        const early = this.#early;
        this.#early = [];
        for (const p of early) this.#decode(p);
      },
      (err: unknown) => this.#log.error({ err }, 'opus decoder failed to load'),
    );
  }

  push(packet: OpusPacket): void {
    if (this.#closed || packet.data.length === 0 || packet.data.length > 4000) return;
    if (this.#ready) this.#decode(packet.data);
    else if (this.#early.length < MAX_EARLY_PACKETS) this.#early.push(packet.data);
  }

  #decode(data: Buffer): void {
    const d = this.#decoder;
    if (!d) return;
    let out;
    try {
      out = d.decodeFrame(data);
    } catch (err) {
      this.errors++;
      this.#log.debug({ err }, 'opus packet not decoded');
      return;
    }
    if (out.errors.length > 0) this.errors += out.errors.length;
    const n = out.samplesDecoded;
    if (n === 0) return;
    const mono = out.channelData[0];
    // Into an Int16Array (little-endian on every platform Node runs here), not writeInt16LE per
    // sample: the loop runs 48 000 times a second per participant.
    const pcm = new Int16Array(n);
    for (let i = 0; i < n; i++) {
      const s = mono[i];
      pcm[i] = s >= 1 ? 32767 : s <= -1 ? -32768 : Math.round(s * 32767);
    }
    this.buffer.push(Buffer.from(pcm.buffer, 0, n * 2));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#early = [];
    const d = this.#decoder;
    this.#decoder = null;
    if (d) void d.ready.then(() => d.free(), () => undefined);
    this.emit('close');
  }
}
