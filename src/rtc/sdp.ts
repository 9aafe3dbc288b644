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
  /** `a=bundle-only`: port 0 here means "only within the BUNDLE group", not rejected. */
  bundleOnly: boolean;
}

/**
 * Whether an offered section is rejected (RFC 8866 §5.14: port 0). Not when it carries
 * `a=bundle-only` (RFC 8843 §6, RFC 8829 §5.2.1): an offerer using max-bundle (Firefox; Chrome
 * uses port 9 on every section) gives every section after the group's first port 0 plus that
 * attribute, meaning "send this over the bundle's transport only". Read as rejected, Firefox's
 * camera was never published although the answer accepted it.
 */
export function isRejected(s: Pick<MediaSection, 'port' | 'bundleOnly'>): boolean {
  return s.port === 0 && !s.bundleOnly;
}

export function parseMediaSections(sdp: string): MediaSection[] {
  const out: MediaSection[] = [];
  let session: MediaSection['direction'] = 'sendrecv';
  let cur: MediaSection | null = null;
  for (const line of sdp.split(/\r?\n/)) {
    const m = /^m=(\w+) (\d+)/.exec(line);
    if (m) {
      cur = { kind: m[1], port: Number(m[2]), mid: null, direction: session, rtpmap: {}, bundleOnly: false };
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
    if (line === 'a=bundle-only') cur.bundleOnly = true;
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
 * A client's offer as werift can read it: a section of the BUNDLE group offered with port 0 and
 * `a=bundle-only` (Firefox's offers under max-bundle, RFC 8829 §5.2.1) gets port 9. werift (0.25)
 * reads port 0 as rejected whatever follows, and answered Firefox's second section, its
 * microphone or its camera, as rejected: nothing of it reached the others or the recording. Port 9
 * is what Chrome offers for every bundled section and means the same here: the media goes over the
 * bundle's transport. Only offers carry `a=bundle-only`; line endings are kept.
 */
export function bundleOnlyAsBundled(sdp: string): string {
  const sections = parseMediaSections(sdp);
  if (!sections.some((x) => x.port === 0 && x.bundleOnly)) return sdp;
  const bundled = new Set(/^a=group:BUNDLE (.*)$/m.exec(sdp)?.[1].trim().split(/\s+/) ?? []);
  const eol = sdp.includes('\r\n') ? '\r\n' : '\n';
  let section = -1;
  return sdp
    .split(/\r?\n/)
    .map((line) => {
      if (!line.startsWith('m=')) return line;
      section++;
      const s = sections[section];
      return s && s.port === 0 && s.bundleOnly && s.mid !== null && bundled.has(s.mid) ? line.replace(/^(m=\w+) 0 /, '$1 9 ') : line;
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

/** An ICE candidate (SDP attribute value or line) whose address is an mDNS name (`….local`). */
export function isMdnsCandidate(candidate: string): boolean {
  const address = candidate.replace(/^a=/, '').split(' ')[4];
  return address !== undefined && /\.local\.?$/i.test(address);
}

/**
 * Drop the remote candidates that carry an mDNS name instead of an address. Browsers hide their
 * host addresses behind random `….local` names (RFC 8828 mode 2; Firefox, Chrome and Safari by
 * default) that only resolve on the browser's own link. The server does not resolve them: it is
 * rarely on that link, and werift's resolver opens a multicast socket on UDP 5353 per connection
 * and waits up to 10 s per name. Nothing is lost: the browser's connectivity checks reach the
 * server from those very addresses, and the server learns each one from them as a peer-reflexive
 * candidate (RFC 8445 §7.3.1.3; draft-ietf-mmusic-mdns-ice-candidates §3.2.2 says an endpoint
 * that does not resolve a name ignores the candidate). Returns how many were dropped.
 */
export function withoutMdnsCandidates(sdp: string): { sdp: string; skipped: number } {
  const lines = sdp.split(/\r?\n/);
  const kept = lines.filter((l) => !(l.startsWith('a=candidate:') && isMdnsCandidate(l)));
  if (kept.length === lines.length) return { sdp, skipped: 0 };
  return { sdp: kept.join(sdp.includes('\r\n') ? '\r\n' : '\n'), skipped: lines.length - kept.length };
}
