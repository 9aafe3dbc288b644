import type { VideoCodec } from '../media/types';

/**
 * Pure RTP payload packetization (the inverse of depacketize.ts) for Tessera's own senders:
 * the headless participant and tests. VP8: RFC 7741 with a 1-byte descriptor. H.264: RFC 6184
 * mode 1, single NAL units or FU-A; the Annex-B access unit's AUD (type 9) is left out.
 */
export function packetizeVp8(frame: Buffer, mtu: number): Buffer[] {
  const max = mtu - 1;
  const out: Buffer[] = [];
  for (let off = 0; off < frame.length; off += max) {
    const desc = Buffer.from([off === 0 ? 0x10 : 0x00]);
    out.push(Buffer.concat([desc, frame.subarray(off, Math.min(frame.length, off + max))]));
  }
  return out;
}

export function splitAnnexB(au: Buffer): Buffer[] {
  const nals: Buffer[] = [];
  let i = 0;
  let start = -1;
  while (i + 2 < au.length) {
    if (au[i] === 0 && au[i + 1] === 0 && au[i + 2] === 1) {
      if (start >= 0) {
        let end = i;
        if (end > start && au[end - 1] === 0) end--;
        nals.push(au.subarray(start, end));
      }
      i += 3;
      start = i;
    } else i++;
  }
  if (start >= 0 && start < au.length) nals.push(au.subarray(start));
  return nals.filter((n) => n.length > 0);
}

export function packetizeH264(au: Buffer, mtu: number): Buffer[] {
  const out: Buffer[] = [];
  for (const nal of splitAnnexB(au)) {
    const type = nal[0] & 0x1f;
    if (type === 9) continue;
    if (nal.length <= mtu) {
      out.push(nal);
      continue;
    }
    const indicator = (nal[0] & 0xe0) | 28;
    const body = nal.subarray(1);
    const max = mtu - 2;
    for (let off = 0; off < body.length; off += max) {
      const s = off === 0 ? 0x80 : 0;
      const e = off + max >= body.length ? 0x40 : 0;
      out.push(Buffer.concat([Buffer.from([indicator, s | e | type]), body.subarray(off, Math.min(body.length, off + max))]));
    }
  }
  return out;
}

export function packetize(codec: VideoCodec, frame: Buffer, mtu = 1100): Buffer[] {
  return codec === 'vp8' ? packetizeVp8(frame, mtu) : packetizeH264(frame, mtu);
}
