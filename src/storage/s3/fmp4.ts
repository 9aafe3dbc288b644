/**
 * Just enough fragmented-MP4 parsing for the S3 sink and its recovery. Pure.
 *
 * - `wholeFragmentsLength`: where a byte run that starts on a box boundary stops being whole
 *   fragments (a crash can tear the tail of a spool file).
 * - `parseInit` + `fragmentEndMs`: the media time at the end of a fragment (tfdt + the sample
 *   durations of its trun), which is the recording's duration when that fragment is the last.
 */

export interface Box {
  type: string;
  start: number;
  /** Offset of the payload (after the header). */
  body: number;
  end: number;
}

/** Top-level boxes of `buf` starting at `offset`; stops at the first box that is not whole. */
export function* boxes(buf: Buffer, offset = 0, limit = buf.length): Generator<Box> {
  let p = offset;
  while (p + 8 <= limit) {
    let size = buf.readUInt32BE(p);
    let header = 8;
    if (size === 1) {
      if (p + 16 > limit) return;
      size = Number(buf.readBigUInt64BE(p + 8));
      header = 16;
    } else if (size === 0) {
      size = limit - p;
    }
    if (size < header || p + size > limit) return;
    yield { type: buf.toString('latin1', p + 4, p + 8), start: p, body: p + header, end: p + size };
    p += size;
  }
}

function child(buf: Buffer, parent: Box, type: string): Box | null {
  for (const b of boxes(buf, parent.body, parent.end)) if (b.type === type) return b;
  return null;
}

function children(buf: Buffer, parent: Box, type: string): Box[] {
  return [...boxes(buf, parent.body, parent.end)].filter((b) => b.type === type);
}

/**
 * Length of the longest prefix of `buf` that ends at the end of a whole fragment (an `mdat` that
 * follows a `moof`), or 0. `buf` must start on a box boundary (a part file does).
 */
export function wholeFragmentsLength(buf: Buffer): number {
  let safe = 0;
  let sawMoof = false;
  for (const b of boxes(buf)) {
    if (b.type === 'moof') sawMoof = true;
    if (b.type === 'mdat' && sawMoof) {
      safe = b.end;
      sawMoof = false;
    }
  }
  return safe;
}

/** Offset of the last top-level `moof` in `buf` (which starts on a box boundary), or -1. */
export function lastMoofOffset(buf: Buffer): number {
  let last = -1;
  for (const b of boxes(buf)) if (b.type === 'moof') last = b.start;
  return last;
}

export interface InitInfo {
  /** trackId → { timescale, default sample duration from trex } */
  tracks: Map<number, { timescale: number; defaultDuration: number }>;
}

/** Track timescales (mdhd) and trex defaults from an init segment (ftyp + moov). */
export function parseInit(buf: Buffer): InitInfo | null {
  const moov = [...boxes(buf)].find((b) => b.type === 'moov');
  if (!moov) return null;
  const tracks = new Map<number, { timescale: number; defaultDuration: number }>();
  for (const trak of children(buf, moov, 'trak')) {
    const tkhd = child(buf, trak, 'tkhd');
    const mdia = child(buf, trak, 'mdia');
    const mdhd = mdia && child(buf, mdia, 'mdhd');
    if (!tkhd || !mdhd) continue;
    const tkv = buf[tkhd.body];
    const trackId = buf.readUInt32BE(tkhd.body + (tkv === 1 ? 20 : 12));
    const mdv = buf[mdhd.body];
    const timescale = buf.readUInt32BE(mdhd.body + (mdv === 1 ? 20 : 12));
    tracks.set(trackId, { timescale, defaultDuration: 0 });
  }
  const mvex = child(buf, moov, 'mvex');
  if (mvex) {
    for (const trex of children(buf, mvex, 'trex')) {
      const id = buf.readUInt32BE(trex.body + 4);
      const t = tracks.get(id);
      if (t) t.defaultDuration = buf.readUInt32BE(trex.body + 12);
    }
  }
  return { tracks };
}

/**
 * Per track, the decode time (in the track's timescale) at the end of the fragment whose `moof`
 * starts at `offset` in `buf`: baseMediaDecodeTime + the sum of its sample durations. Empty when
 * the fragment cannot be read.
 */
export function fragmentTrackEnds(buf: Buffer, init: InitInfo, offset = 0): Map<number, number> {
  const ends = new Map<number, number>();
  const moof = boxes(buf, offset).next().value as Box | undefined;
  if (!moof || moof.type !== 'moof') return ends;
  for (const traf of children(buf, moof, 'traf')) {
    const tfhd = child(buf, traf, 'tfhd');
    if (!tfhd) continue;
    const flags = buf.readUInt32BE(tfhd.body) & 0xffffff;
    const trackId = buf.readUInt32BE(tfhd.body + 4);
    const track = init.tracks.get(trackId);
    if (!track || !track.timescale) continue;
    let p = tfhd.body + 8;
    if (flags & 0x1) p += 8;
    if (flags & 0x2) p += 4;
    let defaultDuration = track.defaultDuration;
    if (flags & 0x8) defaultDuration = buf.readUInt32BE(p);
    const tfdt = child(buf, traf, 'tfdt');
    let base = 0;
    if (tfdt) base = buf[tfdt.body] === 1 ? Number(buf.readBigUInt64BE(tfdt.body + 4)) : buf.readUInt32BE(tfdt.body + 4);
    let total = 0;
    for (const trun of children(buf, traf, 'trun')) {
      const tf = buf.readUInt32BE(trun.body) & 0xffffff;
      const count = buf.readUInt32BE(trun.body + 4);
      let q = trun.body + 8;
      if (tf & 0x1) q += 4;
      if (tf & 0x4) q += 4;
      const per = ((tf & 0x100) ? 4 : 0) + ((tf & 0x200) ? 4 : 0) + ((tf & 0x400) ? 4 : 0) + ((tf & 0x800) ? 4 : 0);
      if (tf & 0x100) {
        for (let i = 0; i < count; i++) total += buf.readUInt32BE(q + i * per);
      } else {
        total += count * defaultDuration;
      }
    }
    ends.set(trackId, Math.max(ends.get(trackId) ?? 0, base + total));
  }
  return ends;
}

/**
 * Media time (ms) at the end of the fragment whose `moof` starts at `offset` in `buf`: the
 * largest over its tracks of baseMediaDecodeTime + the sum of sample durations. null when the
 * fragment cannot be read.
 */
export function fragmentEndMs(buf: Buffer, init: InitInfo, offset = 0): number | null {
  let end: number | null = null;
  for (const [trackId, ticks] of fragmentTrackEnds(buf, init, offset)) {
    const ms = (ticks / init.tracks.get(trackId)!.timescale) * 1000;
    end = end === null ? ms : Math.max(end, ms);
  }
  return end === null ? null : Math.round(end);
}
