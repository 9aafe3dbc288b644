/**
 * Pure audio pieces of the pacer: a per-source PCM jitter buffer and the mixer.
 * Format everywhere: 48 kHz mono signed 16-bit little-endian, 20 ms blocks of 960 samples.
 */
export const SAMPLE_RATE = 48000;
export const BLOCK_SAMPLES = 960;
export const BLOCK_BYTES = BLOCK_SAMPLES * 2;
/**
 * Audio a source's jitter buffer holds before it plays: every mixed block is that much older
 * than the tick it is mixed at, while a tile shows its newest decoded frame. The recording
 * stamps its audio this much earlier (Recording) so the two line up in the file.
 */
export const AUDIO_PREBUFFER_MS = 60;

/**
 * Decoded PCM of one source waiting to be mixed. It starts (and restarts after running dry)
 * only once `prebufferMs` are queued, so bursty arrival does not chop the audio. A burst (an
 * event-loop stall, a network hiccup) would otherwise leave extra audio queued for good — the
 * source then plays late against its video and against everyone else — so when more than
 * `targetMs` stays queued for `settleBlocks` blocks in a row, the excess is dropped. Beyond
 * `maxMs` the oldest audio is dropped at once. Missing audio is silence.
 */
export class PcmJitterBuffer {
  #chunks: Buffer[] = [];
  #bytes = 0;
  #playing = false;
  readonly prebufferBytes: number;
  readonly targetBytes: number;
  readonly maxBytes: number;
  droppedBytes = 0;
  underruns = 0;
  #overTarget = 0;

  constructor(prebufferMs = AUDIO_PREBUFFER_MS, maxMs = 400, targetMs = 100, private readonly settleBlocks = 25) {
    this.prebufferBytes = Math.round((prebufferMs * SAMPLE_RATE) / 1000) * 2;
    this.targetBytes = Math.round((targetMs * SAMPLE_RATE) / 1000) * 2;
    this.maxBytes = Math.round((maxMs * SAMPLE_RATE) / 1000) * 2;
  }

  #dropOldest(n: number): void {
    n -= n % 2;
    while (n > 0 && this.#chunks.length) {
      const head = this.#chunks[0];
      const k = Math.min(n, head.length);
      if (k === head.length) this.#chunks.shift();
      else this.#chunks[0] = head.subarray(k);
      this.#bytes -= k;
      this.droppedBytes += k;
      n -= k;
    }
  }

  get queuedMs(): number {
    return (this.#bytes / 2 / SAMPLE_RATE) * 1000;
  }

  push(pcm: Buffer): void {
    if (pcm.length === 0) return;
    this.#chunks.push(pcm);
    this.#bytes += pcm.length;
    if (this.#bytes > this.maxBytes) this.#dropOldest(this.#bytes - this.maxBytes);
  }

  /** One 20 ms block, or null (silence) when not playing. */
  pull(): Buffer | null {
    if (!this.#playing) {
      if (this.#bytes < this.prebufferBytes) return null;
      this.#playing = true;
    }
    if (this.#bytes < BLOCK_BYTES) {
      this.#playing = false;
      this.underruns++;
      if (this.#bytes === 0) return null;
    }
    if (this.#bytes > this.targetBytes) {
      if (++this.#overTarget >= this.settleBlocks) {
        this.#dropOldest(this.#bytes - this.prebufferBytes);
        this.#overTarget = 0;
      }
    } else this.#overTarget = 0;
    const out = Buffer.alloc(BLOCK_BYTES);
    let o = 0;
    while (o < BLOCK_BYTES && this.#chunks.length) {
      const head = this.#chunks[0];
      const n = Math.min(head.length, BLOCK_BYTES - o);
      head.copy(out, o, 0, n);
      o += n;
      if (n === head.length) this.#chunks.shift();
      else this.#chunks[0] = head.subarray(n);
      this.#bytes -= n;
    }
    return out;
  }
}

/**
 * Sums the blocks and never clips: when the sum would exceed full scale, a gain brings the
 * block's peak under it at once (attack), and recovers slowly (release) so it does not pump.
 */
/**
 * 16-bit samples of `b` without a copy when it starts on an even byte (Int16Array needs that),
 * else a copy. Little-endian, as the PCM is, on every platform Node runs here. Typed arrays, not
 * readInt16LE per sample: the mixer touches every sample of every source, 48 000 a second each.
 */
function int16View(b: Buffer): Int16Array {
  if (b.byteOffset % 2 === 0) return new Int16Array(b.buffer, b.byteOffset, b.length >> 1);
  const c = new Int16Array(b.length >> 1);
  new Uint8Array(c.buffer).set(b.subarray(0, c.length * 2));
  return c;
}

export class Mixer {
  #gain = 1;
  /**
   * −2 dBFS, not full scale: AAC's quantisation noise lets a decoded sample overshoot the PCM it
   * was made from. With the ceiling at −0.2 dBFS, nine tones mixed decoded to a peak of 1.0014
   * (clipped in any player) in a CI run; at −1 dBFS (the usual true-peak headroom for lossy
   * codecs) a later CI run still decoded to 1.009: nine beeping tones switched on and off at once
   * overshoot by ~1.1 dB through AAC at 96 kbit/s. Hence −2 dBFS.
   */
  static readonly CEILING = Math.round(32768 * 10 ** (-2 / 20));
  readonly #ceiling = Mixer.CEILING;
  readonly #release = 0.02;

  mix(blocks: (Buffer | null)[]): { pcm: Buffer; levels: number[] } {
    const sum = new Float32Array(BLOCK_SAMPLES);
    const levels: number[] = [];
    for (const b of blocks) {
      if (!b) {
        levels.push(0);
        continue;
      }
      let energy = 0;
      const v = int16View(b);
      for (let i = 0; i < BLOCK_SAMPLES; i++) {
        const s = v[i];
        sum[i] += s;
        energy += s * s;
      }
      levels.push(Math.sqrt(energy / BLOCK_SAMPLES) / 32768);
    }
    let peak = 0;
    for (let i = 0; i < BLOCK_SAMPLES; i++) peak = Math.max(peak, Math.abs(sum[i]));
    const needed = peak > this.#ceiling ? this.#ceiling / peak : 1;
    this.#gain = needed < this.#gain ? needed : Math.min(needed, this.#gain + (1 - this.#gain) * this.#release);
    const out = new Int16Array(BLOCK_SAMPLES);
    for (let i = 0; i < BLOCK_SAMPLES; i++) {
      const v = Math.round(sum[i] * this.#gain);
      out[i] = v > 32767 ? 32767 : v < -32768 ? -32768 : v;
    }
    return { pcm: Buffer.from(out.buffer, 0, BLOCK_BYTES), levels };
  }

  get gain(): number {
    return this.#gain;
  }
}
