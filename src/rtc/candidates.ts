import { isIPv4, isIPv6 } from 'node:net';

/**
 * The address families this server's ICE agents use (peerConfig's iceUseIpv4 / iceUseIpv6).
 */
export const SERVED_FAMILIES = { ipv4: true, ipv6: false } as const;

/**
 * Whether a client's ICE candidate may reach werift. A candidate names the address the server
 * sends STUN checks (and then media) to; werift resolves a hostname with the system resolver
 * when it sends, and a `.local` name with an mDNS query, so a client could make the server look
 * up any name and send to whatever it resolves to. Only IP literals of a served family, on UDP,
 * and not an unspecified, multicast or broadcast address, are kept. Any other candidate is
 * skipped, never an error: browsers send mDNS host candidates (Firefox, Chrome) and the
 * connection still forms from the others or from the client's own checks (peer-reflexive).
 *
 * `line`: `candidate:…` or `a=candidate:…`; its address is the fifth field.
 */
export function usableCandidate(line: string): boolean {
  const f = line.replace(/^a=/, '').split(' ');
  if (f.length < 8 || (f[2] ?? '').toLowerCase() !== 'udp') return false;
  const addr = f[4];
  if (SERVED_FAMILIES.ipv4 && isIPv4(addr)) {
    const [a] = addr.split('.').map(Number);
    return a !== 0 && a < 224 && addr !== '255.255.255.255';
  }
  if (SERVED_FAMILIES.ipv6 && isIPv6(addr)) return addr !== '::' && !/^ff/i.test(addr);
  return false;
}

/** A client's SDP without the candidate lines `usableCandidate` refuses, and at most `max` of the others. */
export function usableCandidatesOnly(sdp: string, max = Infinity): string {
  const eol = sdp.includes('\r\n') ? '\r\n' : '\n';
  let kept = 0;
  return sdp
    .split(/\r?\n/)
    .filter((l) => !l.startsWith('a=candidate:') || (usableCandidate(l) && kept++ < max))
    .join(eol);
}
