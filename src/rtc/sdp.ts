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

/**
 * Take rejected m= sections (port 0) out of the BUNDLE group. werift marks an inactive
 * transceiver (a forward whose publisher left) with port 0 but keeps its mid in the group; when
 * that mid is the group's first (the offerer-tagged section), JSEP makes the whole group rejected
 * and Chrome refuses the offer ("The m= section with mid='2' should be rejected"). A rejected
 * section does not belong in a BUNDLE group at all (RFC 9143 §7.3.3), so the group keeps only
 * live mids, in order; with none left the line goes.
 */
export function bundleLiveSectionsOnly(sdp: string): string {
  const rejected = new Set(parseMediaSections(sdp).filter((s) => s.port === 0 && s.mid !== null).map((s) => s.mid!));
  if (rejected.size === 0) return sdp;
  const eol = sdp.includes('\r\n') ? '\r\n' : '\n';
  return sdp
    .split(/\r?\n/)
    .flatMap((line) => {
      const g = /^a=group:BUNDLE(.*)$/.exec(line);
      if (!g) return [line];
      const mids = g[1].trim().split(/\s+/).filter((m) => m && !rejected.has(m));
      return mids.length ? [`a=group:BUNDLE ${mids.join(' ')}`] : [];
    })
    .join(eol);
}

/**
 * With PUBLIC_IP set, offer clients only the candidates on that address. The others are the
 * server's own interface addresses — a pod's or container's private IP that clients outside
 * cannot reach — and each one a client tries first costs it a failed connectivity check before
 * the public pair is nominated (measured with the server in a namespace behind DNAT: publishing
 * took 5.5 s with the private candidates offered). If no candidate carries the address (werift
 * did not add it), the SDP is left as it is rather than left without candidates.
 */
export function announcedCandidatesOnly(sdp: string, address: string | null): string {
  if (!address) return sdp;
  const lines = sdp.split(/\r?\n/);
  const isCandidate = (l: string) => l.startsWith('a=candidate:');
  const onAddress = (l: string) => l.split(' ')[4] === address;
  if (!lines.some((l) => isCandidate(l) && onAddress(l))) return sdp;
  const eol = sdp.includes('\r\n') ? '\r\n' : '\n';
  return lines.filter((l) => !isCandidate(l) || onAddress(l)).join(eol);
}
