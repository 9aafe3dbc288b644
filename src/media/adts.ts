/**
 * AAC in ADTS, as FFmpeg writes it with `-f adts`: cut the stream into raw AAC frames (the 7- or
 * 9-byte header removed) and build the AudioSpecificConfig an MP4 needs. Pure.
 */
const RATES = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];

export interface AdtsFrame {
  data: Buffer;
  sampleRate: number;
  channels: number;
  /** Audio object type (2 = AAC LC). */
  objectType: number;
}

export class AdtsSplitter {
  #buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): AdtsFrame[] {
    this.#buf = this.#buf.length ? Buffer.concat([this.#buf, chunk]) : chunk;
    const out: AdtsFrame[] = [];
    let p = 0;
    while (p + 7 <= this.#buf.length) {
      const b = this.#buf;
      if (b[p] !== 0xff || (b[p + 1] & 0xf0) !== 0xf0) {
        p++; // resynchronise on the next syncword
        continue;
      }
      const protectionAbsent = b[p + 1] & 1;
      const objectType = ((b[p + 2] >> 6) & 3) + 1;
      const rateIndex = (b[p + 2] >> 2) & 0xf;
      const channels = ((b[p + 2] & 1) << 2) | (b[p + 3] >> 6);
      const length = ((b[p + 3] & 3) << 11) | (b[p + 4] << 3) | (b[p + 5] >> 5);
      const header = protectionAbsent ? 7 : 9;
      if (length < header) {
        p++;
        continue;
      }
      if (p + length > b.length) break;
      out.push({ data: Buffer.from(b.subarray(p + header, p + length)), sampleRate: RATES[rateIndex] ?? 0, channels, objectType });
      p += length;
    }
    this.#buf = this.#buf.subarray(p);
    return out;
  }
}

/** The 2-byte AudioSpecificConfig (ISO 14496-3) for an object type, rate and channel count. */
export function audioSpecificConfig(objectType: number, sampleRate: number, channels: number): Buffer {
  const rateIndex = RATES.indexOf(sampleRate);
  if (rateIndex < 0) throw new Error(`no AAC sampling frequency index for ${sampleRate}`);
  const v = (objectType << 11) | (rateIndex << 7) | (channels << 3);
  return Buffer.from([v >> 8, v & 0xff]);
}
