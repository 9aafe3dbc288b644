/** Minimal pure SDP reading: the media sections we need to know what a client sends. */
export interface MediaSection {
  kind: string;
  port: number;
  mid: string | null;
  direction: 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';
  /** First a=ssrc of the section (the media SSRC; RTX/FEC come in ssrc-group lines after). */
  ssrc?: number;
  /** Codec names by payload type (a=rtpmap). */
  rtpmap: Record<number, string>;
}

export function parseMediaSections(sdp: string): MediaSection[] {
  const out: MediaSection[] = [];
  let session: MediaSection['direction'] = 'sendrecv';
  let cur: MediaSection | null = null;
  for (const line of sdp.split(/\r?\n/)) {
    const m = /^m=(\w+) (\d+)/.exec(line);
    if (m) {
      cur = { kind: m[1], port: Number(m[2]), mid: null, direction: session, rtpmap: {} };
      out.push(cur);
      continue;
    }
    const dir = /^a=(sendrecv|sendonly|recvonly|inactive)$/.exec(line);
    if (dir) {
      if (cur) cur.direction = dir[1] as MediaSection['direction'];
      else session = dir[1] as MediaSection['direction'];
      continue;
    }
    if (!cur) continue;
    const mid = /^a=mid:(\S+)/.exec(line);
    if (mid) cur.mid = mid[1];
    const ssrc = /^a=ssrc:(\d+) /.exec(line);
    if (ssrc && cur.ssrc === undefined) cur.ssrc = Number(ssrc[1]);
    const rtpmap = /^a=rtpmap:(\d+) ([\w-]+)\//.exec(line);
    if (rtpmap) cur.rtpmap[Number(rtpmap[1])] = rtpmap[2];
  }
  return out;
}
