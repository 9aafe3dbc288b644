import { SupervisedDecoder } from './SupervisedDecoder';
import { audioDecoderArgs } from '../../compositor/ffmpegArgs';
import { OggOpusWriter } from '../media/ogg';
import { PcmJitterBuffer } from './audio';
import type { FfmpegProcess } from './FfmpegProcess';
import type { OpusPacket } from '../media/types';
import type { Logger } from '../logger';

/**
 * Decodes one source's Opus into 48 kHz mono PCM for the mixer. Packets are wrapped in Ogg pages
 * (one per page, so each decodes at once). Gaps (loss, DTX, a muted microphone) simply leave the
 * jitter buffer dry, and the mixer hears silence for this source only.
 */
export class AudioDecoder extends SupervisedDecoder {
  readonly buffer = new PcmJitterBuffer();
  #ogg = new OggOpusWriter();
  #granule = 0n;
  #odd: Buffer | null = null;

  constructor(opts: { ffmpegPath: string; logger: Logger; stallMs: number }) {
    super(opts.ffmpegPath, opts.logger, opts.stallMs);
    this.spawn();
  }

  protected args(): string[] {
    return audioDecoderArgs();
  }

  protected onSpawn(_proc: FfmpegProcess): void {
    this.#ogg = new OggOpusWriter();
    this.#granule = 0n;
    this.#odd = null;
    this.write(this.#ogg.headers(1), false);
  }

  protected onOutput(chunk: Buffer): void {
    // Keep samples whole: carry an odd trailing byte to the next chunk.
    let buf = this.#odd ? Buffer.concat([this.#odd, chunk]) : chunk;
    this.#odd = null;
    if (buf.length % 2) {
      this.#odd = buf.subarray(buf.length - 1);
      buf = buf.subarray(0, buf.length - 1);
    }
    this.buffer.push(Buffer.from(buf));
  }

  push(packet: OpusPacket): void {
    if (this.closed || packet.data.length === 0 || packet.data.length > 4000) return;
    this.#granule += 960n;
    this.write(this.#ogg.page(packet.data, this.#granule));
  }
}
