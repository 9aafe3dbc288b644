/** Ogg framing for Opus (RFC 3533 / RFC 7845): just enough to feed and read FFmpeg. */

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let r = i << 24;
    for (let j = 0; j < 8; j++) r = r & 0x80000000 ? (r << 1) ^ 0x04c11db7 : r << 1;
    t[i] = r >>> 0;
  }
  return t;
})();

function oggCrc(buf: Buffer): number {
  let crc = 0;
  for (let i = 0; i < buf.length; i++) crc = ((crc << 8) ^ CRC_TABLE[((crc >>> 24) & 0xff) ^ buf[i]]) >>> 0;
  return crc >>> 0;
}

/** Writes an Ogg Opus stream one packet per page, so FFmpeg can decode each as soon as it lands. */
export class OggOpusWriter {
  #seq = 0;
  #serial: number;
  constructor(serial = 0x7e55e7a) {
    this.#serial = serial;
  }

  /** OpusHead + OpusTags pages (mono, 48 kHz, pre-skip 0 for live streams). */
  headers(channels = 1): Buffer {
    const head = Buffer.alloc(19);
    head.write('OpusHead', 0, 'latin1');
    head[8] = 1;
    head[9] = channels;
    head.writeUInt16LE(0, 10);
    head.writeUInt32LE(48000, 12);
    head.writeInt16LE(0, 16);
    head[18] = 0;
    const vendor = 'tessera';
    const tags = Buffer.alloc(8 + 4 + vendor.length + 4);
    tags.write('OpusTags', 0, 'latin1');
    tags.writeUInt32LE(vendor.length, 8);
    tags.write(vendor, 12, 'latin1');
    tags.writeUInt32LE(0, 12 + vendor.length);
    return Buffer.concat([this.page(head, 0n, 0x02), this.page(tags, 0n, 0)]);
  }

  /** One page holding one packet; `granule` is the 48 kHz sample position at its end. */
  page(packet: Buffer, granule: bigint, flags = 0): Buffer {
    const segs: number[] = [];
    let left = packet.length;
    while (left >= 255) {
      segs.push(255);
      left -= 255;
    }
    segs.push(left);
    if (segs.length > 255) throw new Error('Ogg packet too large for one page');
    const h = Buffer.alloc(27 + segs.length);
    h.write('OggS', 0, 'latin1');
    h[4] = 0;
    h[5] = flags;
    h.writeBigInt64LE(granule, 6);
    h.writeUInt32LE(this.#serial, 14);
    h.writeUInt32LE(this.#seq++, 18);
    h.writeUInt32LE(0, 22);
    h[26] = segs.length;
    segs.forEach((s, i) => (h[27 + i] = s));
    const page = Buffer.concat([h, packet]);
    page.writeUInt32LE(oggCrc(page), 22);
    return page;
  }
}

/** Reads every packet of a whole Ogg stream (headers included, in order). */
export function parseOggPackets(buf: Buffer): Buffer[] {
  const packets: Buffer[] = [];
  let pending: Buffer[] = [];
  let o = 0;
  while (o + 27 <= buf.length) {
    if (buf.toString('latin1', o, o + 4) !== 'OggS') throw new Error(`bad Ogg page at ${o}`);
    const nsegs = buf[o + 26];
    const lacing = buf.subarray(o + 27, o + 27 + nsegs);
    let p = o + 27 + nsegs;
    for (const len of lacing) {
      pending.push(buf.subarray(p, p + len));
      p += len;
      if (len < 255) {
        packets.push(Buffer.concat(pending));
        pending = [];
      }
    }
    o = p;
  }
  return packets;
}
