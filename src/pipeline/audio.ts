/**
 * Pure audio pieces of the pacer: a per-source PCM jitter buffer and the mixer.
 * Format everywhere: 48 kHz mono signed 16-bit little-endian, 20 ms blocks of 960 samples.
 */
export const SAMPLE_RATE = 48000;
export const BLOCK_SAMPLES = 960;
export const BLOCK_BYTES = BLOCK_SAMPLES * 2;
/**
 * How much earlier than its block's due time the recording stamps its audio (Recording): a
 * source's audio is mixed this long plus its pictures' own wait after it arrived (see
 * PcmJitterBuffer.pull), so the two line up in the file.
 */
export const AUDIO_PREBUFFER_MS = 60;
/**
 * The least age a source's audio is held at, whatever its pictures do (they can be shown before
 * they arrived by the worker's clock when a starved worker reads them late: FrameTicks): a block
 * and some room for jitter.
 */
export const MIN_AUDIO_AGE_MS = 40;
/** How far a source's audio may stray from its target age before it is moved back (see pull). */
export const AUDIO_TOLERANCE_MS = 8;

/**
 * How long a source's pictures wait between arriving and the tick that shows them (0 to one tick,
 * by where its frames fall between the recording's ticks, plus FrameTicks' margin; less, even
 * below 0, for frames a starved worker read late; with decoded tiles, the decoder's latency and
 * the frames queued after it too), as the mean of its last WINDOW pictures (about half a
 * second). Its audio is made to wait as long, so each participant's lip sync is kept on its own
 * phase.
 *
 * A window rather than a running average since day 22: a decoder that starts puts out its
 * backlog at once, and those first pictures wait 200-500 ms before the queue catches up, which
 * a running average that starts as a plain mean carried for seconds (audio up to 190 ms late
 * between 1.8 and 3 s into a recording on decoded tiles). A window forgets them half a second
 * after the queue has caught up, and is no noisier in the steady state.
 */
export class PictureDelay {
  static readonly WINDOW = 16;
  readonly #notes = new Float64Array(PictureDelay.WINDOW);
  #count = 0;
  #next = 0;
  #sum = 0;
  constructor(readonly defaultMs: number) {}
  note(ms: number): void {
    if (!(ms >= -1000 && ms <= 1000)) return;
    if (this.#count === PictureDelay.WINDOW) this.#sum -= this.#notes[this.#next];
    else this.#count++;
    this.#notes[this.#next] = ms;
    this.#sum += ms;
    this.#next = (this.#next + 1) % PictureDelay.WINDOW;
  }
  get ms(): number {
    return this.#count ? this.#sum / this.#count : this.defaultMs;
  }
  /**
   * Back to the default, for pictures that take another path (a switch to decoded tiles, whose
   * pictures also wait in a decoder): else the figure of the direct epochs' first seconds, when
   * frames wait longest while the clock starts, would be averaged into the new path's (day 21: a
   * participant's audio 25–40 ms later than their pictures and their own track).
   */
  reset(): void {
    this.#count = 0;
    this.#next = 0;
    this.#sum = 0;
  }
}

/**
 * Decoded PCM of one source waiting to be mixed, kept at a set age. A block pulled at its due
 * time T starts with the oldest sample queued; its age is how long before T that sample arrived
 * (the queue's length plus the time since the last packet came: the last packet's last sample
 * arrived then). The recording stamps the block `AUDIO_PREBUFFER_MS` before T, and a picture
 * lands on the first tick after it arrives, so a source's audio plays in sync with its pictures
 * when its age is the prebuffer plus its pictures' wait (`wantMs` in pull).
 *
 * It starts (and restarts after running dry) once that age is reached, dropping any excess so it
 * starts exactly there — before this, it started on a whole number of packets queued, which put
 * each source's audio 0–20 ms late by where its packets fell between the blocks, while its
 * pictures were 0–33 ms late by where they fell between the ticks: lip sync measured −5 to −45 ms
 * and differed per participant. While it plays, the largest age seen over `settleBlocks` blocks
 * (arrival jitter only makes a packet look younger) is compared with the target: more than
 * `toleranceMs` over (a burst: an event-loop stall, a network hiccup) and the excess is dropped;
 * as far under (a source's pictures now wait longer) and silence is put before it. Beyond `maxMs`
 * the oldest audio is dropped at once. Missing audio is silence. Times are in ms on one clock
 * (performance.now() by default).
 */
export class PcmJitterBuffer {
  #chunks: Buffer[] = [];
  #bytes = 0;
  #playing = false;
  #lastPushAt = -Infinity;
  #windowMax = -Infinity;
  #windowBlocks = 0;
  readonly prebufferMs: number;
  readonly maxBytes: number;
  readonly toleranceMs: number;
  readonly settleBlocks: number;
  droppedBytes = 0;
  paddedBytes = 0;
  underruns = 0;
  readonly #now: () => number;

  constructor(o: { prebufferMs?: number; maxMs?: number; toleranceMs?: number; settleBlocks?: number; now?: () => number } = {}) {
    this.prebufferMs = o.prebufferMs ?? AUDIO_PREBUFFER_MS;
    this.maxBytes = msToBytes(o.maxMs ?? 400);
    this.toleranceMs = o.toleranceMs ?? AUDIO_TOLERANCE_MS;
    this.settleBlocks = o.settleBlocks ?? 25;
    this.#now = o.now ?? (() => performance.now());
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

  /** Age (ms) at `at` of the oldest sample queued. */
  ageMs(at: number): number {
    return this.queuedMs + (at - this.#lastPushAt);
  }

  /** A decoded packet; `at`: when it arrived. */
  push(pcm: Buffer, at = this.#now()): void {
    if (pcm.length === 0) return;
    this.#chunks.push(pcm);
    this.#bytes += pcm.length;
    this.#lastPushAt = at;
    if (this.#bytes > this.maxBytes) this.#dropOldest(this.#bytes - this.maxBytes);
  }

  /**
   * The block due at `due`, or null (silence) when not playing. `wantMs`: the age its first
   * sample should have (the prebuffer plus this source's pictures' wait).
   */
  pull(due = this.#now(), wantMs = this.prebufferMs): Buffer | null {
    if (!this.#playing) {
      const age = this.ageMs(due);
      if (this.#bytes === 0 || age < wantMs) return null;
      this.#dropOldest(msToBytes(age - wantMs));
      this.#playing = true;
      this.#windowMax = -Infinity;
      this.#windowBlocks = 0;
    } else {
      this.#windowMax = Math.max(this.#windowMax, this.ageMs(due));
      if (++this.#windowBlocks >= this.settleBlocks) {
        const off = this.#windowMax - wantMs;
        if (off > this.toleranceMs) this.#dropOldest(msToBytes(off));
        else if (off < -this.toleranceMs) {
          const pad = msToBytes(-off);
          this.#chunks.unshift(Buffer.alloc(pad));
          this.#bytes += pad;
          this.paddedBytes += pad;
        }
        this.#windowMax = -Infinity;
        this.#windowBlocks = 0;
      }
    }
    if (this.#bytes < BLOCK_BYTES) {
      this.#playing = false;
      this.underruns++;
      if (this.#bytes === 0) return null;
    }
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

function msToBytes(ms: number): number {
  return ms > 0 ? Math.round((ms * SAMPLE_RATE) / 1000) * 2 : 0;
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
