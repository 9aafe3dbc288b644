/** IVF, the simplest VP8 container: a 32-byte file header, then a 12-byte header per frame. */

/** `fourcc` VP80, or H264 for H.264 access units (Annex B), which FFmpeg's IVF demuxer also takes. */
export function ivfFileHeader(width: number, height: number, fpsNum = 90000, fpsDen = 1, fourcc: 'VP80' | 'H264' = 'VP80'): Buffer {
  const b = Buffer.alloc(32);
  b.write('DKIF', 0, 'latin1');
  b.writeUInt16LE(0, 4); // version
  b.writeUInt16LE(32, 6); // header size
  b.write(fourcc, 8, 'latin1');
  b.writeUInt16LE(width, 12);
  b.writeUInt16LE(height, 14);
  b.writeUInt32LE(fpsNum, 16); // timebase denominator (rate)
  b.writeUInt32LE(fpsDen, 20); // timebase numerator (scale)
  b.writeUInt32LE(0, 24); // frame count (unknown, streaming)
  return b;
}

export function ivfFrameHeader(size: number, pts: bigint): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt32LE(size, 0);
  b.writeBigUInt64LE(pts, 4);
  return b;
}

/** Splits a whole IVF file into frames (for synthetic clips made by FFmpeg). */
export function parseIvf(buf: Buffer): { width: number; height: number; frames: Buffer[] } {
  if (buf.length < 32 || buf.toString('latin1', 0, 4) !== 'DKIF') throw new Error('not an IVF stream');
  const headerLen = buf.readUInt16LE(6);
  const frames: Buffer[] = [];
  let o = headerLen;
  while (o + 12 <= buf.length) {
    const size = buf.readUInt32LE(o);
    if (o + 12 + size > buf.length) break;
    frames.push(Buffer.from(buf.subarray(o + 12, o + 12 + size)));
    o += 12 + size;
  }
  return { width: buf.readUInt16LE(12), height: buf.readUInt16LE(14), frames };
}

/** VP8 keyframe: bit 0 of the first byte is 0; the frame's size follows the start code. */
export function vp8KeyframeInfo(frame: Buffer): { width: number; height: number } | null {
  if (frame.length < 10 || (frame[0] & 1) !== 0) return null;
  if (frame[3] !== 0x9d || frame[4] !== 0x01 || frame[5] !== 0x2a) return null;
  return { width: frame.readUInt16LE(6) & 0x3fff, height: frame.readUInt16LE(8) & 0x3fff };
}

/**
 * Whether a VP8 frame's header is well formed (RFC 6386 §9.1): the 3-byte tag's version is 0–3,
 * its first partition fits in the frame, and a keyframe has the start code. Cheap; catches junk
 * before it reaches a decoder that would put out nothing for it.
 */
export function vp8FrameOk(frame: Buffer, keyframe: boolean): boolean {
  if (frame.length < 4) return false;
  const tag = frame[0] | (frame[1] << 8) | (frame[2] << 16);
  const key = (tag & 1) === 0;
  const version = (tag >> 1) & 7;
  const firstPart = tag >>> 5;
  if (key !== keyframe || version > 3 || firstPart === 0) return false;
  if (key && vp8KeyframeInfo(frame) === null) return false;
  return (key ? 10 : 3) + firstPart <= frame.length;
}
