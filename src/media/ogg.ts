/** Ogg framing for Opus (RFC 3533 / RFC 7845): reading the synthetic participants' clips made by FFmpeg. */

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
