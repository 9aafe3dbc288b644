import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Connection, TransportWideCC } from 'werift';

/**
 * Fixes to werift (0.25.2) behaviour we depend on, applied once when the RTC code loads.
 *
 * Transport-cc feedback length. werift's receiver builds a TransportWideCC feedback packet per
 * interval for every publisher, and serialises its header length as floor(bytes / 4) without
 * padding, so whenever the chunks and deltas do not end on a 32-bit boundary (most packets) the
 * packet claims to be 1–3 bytes shorter than it is. A strict parser then drops it: werift's own
 * logs "dropping malformed SRTCP packet" for each (224 in one 20-second test), and libwebrtc's
 * TransportFeedback parser rejects a packet whose deltas run past its length, so Chrome's
 * congestion control lost most of the feedback it is negotiated for. RFC 3550 §6.4.1: pad to a
 * multiple of four, set P, the last byte counts the padding. werift pads correctly when the
 * header's padding flag is set, so set it exactly when padding is needed.
 *
 * ICE with nothing to pair. werift's `connect()` forms pairs from the remote candidates it has
 * and, when there are none, declares the connection failed at once (its wait for a result is
 * skipped when the check list is empty). That is the normal case with a browser hiding its host
 * addresses behind mDNS `.local` names (Firefox and Chrome by default, Safari too), which the
 * server does not resolve (see `withoutMdnsCandidates`): the browser's own connectivity checks
 * are about to arrive, and RFC 8445 §7.3.1.3 has the receiver learn a peer-reflexive candidate
 * from each and answer it with a triggered check. werift does all of that (`checkIncoming`) —
 * checks that come before `connect()` are answered and kept as "early checks" — but only if
 * `connect()` has not given up first. So with no pairable remote candidate, `connect()` first
 * waits until a check or a trickled candidate arrives or the connection is closed (the Peer's
 * connect timeout closes it), at most NO_CANDIDATE_WAIT_MS, then proceeds as werift would.
 *
 * A mid extension that holds 64 KB. Each sender writes its mid into every packet it sends as a
 * fresh `Buffer.from(mid)`: a slice of Node's shared pool, 64 KB since Node 22 (8 KB before). The
 * sender keeps its last 128 packets for retransmission, so every pool slab any of them was cut
 * from stays alive: with 8 people meeting (112 senders) 241 slabs, 16 MB, held for two bytes each
 * (a heap snapshot, day 38). The mid's bytes are now made once per mid, in a buffer of their own,
 * and shared by every packet: werift only reads them (it serialises the header into a new buffer).
 */
let applied = false;

/** Upper bound of the wait for a first check when no remote candidate can be paired. */
export const NO_CANDIDATE_WAIT_MS = 30_000;

interface ConnectionInternals {
  iceLite: boolean;
  state: string;
  checkList: unknown[];
  remoteCandidates: unknown[];
  earlyChecks: unknown[];
  protocols: Array<{ localCandidate?: { canPairWith(c: unknown): boolean } }>;
}

function somethingToCheck(c: ConnectionInternals): boolean {
  if (c.checkList.length > 0 || c.earlyChecks.length > 0) return true;
  return c.remoteCandidates.some((r) => c.protocols.some((p) => p.localCandidate?.canPairWith(r)));
}

export function applyWeriftFixes(): void {
  if (applied) return;
  applied = true;
  const serialize = TransportWideCC.prototype.serialize;
  TransportWideCC.prototype.serialize = function (this: TransportWideCC): ReturnType<typeof serialize> {
    this.header.padding = false;
    const plain = serialize.call(this);
    if (plain.length % 4 === 0) return plain;
    this.header.padding = true;
    return serialize.call(this);
  };

  const connect = Connection.prototype.connect;
  Connection.prototype.connect = async function (this: Connection): Promise<void> {
    const c = this as unknown as ConnectionInternals;
    if (!c.iceLite && !somethingToCheck(c)) {
      const until = Date.now() + NO_CANDIDATE_WAIT_MS;
      while (!somethingToCheck(c) && c.state !== 'closed' && Date.now() < until) await sleep(25, undefined, { ref: false });
    }
    return connect.call(this);
  };

  shareMidBuffers();
}

/** The number of mids kept (a connection's mids are "0", "1", …; a few hundred at most). */
const MAX_MIDS = 4096;

function shareMidBuffers(): void {
  // The function lives in werift's RTP module, which its package does not export; the sender
  // calls it through the module's exports on every packet, so replacing the export is enough.
  // A werift that moves it only loses the saving.
  let mod: { serializeSdesMid?: (id: string) => Buffer };
  try {
    mod = require(path.join(path.dirname(require.resolve('werift')), '../../rtp/src/rtp/headerExtension.js'));
  } catch {
    return;
  }
  const own = mod.serializeSdesMid;
  if (typeof own !== 'function') return;
  const mids = new Map<string, Buffer>();
  mod.serializeSdesMid = (id: string): Buffer => {
    let bytes = mids.get(id);
    if (!bytes) {
      bytes = Buffer.alloc(Buffer.byteLength(id), id); // its own memory, not a pool slice
      if (mids.size < MAX_MIDS) mids.set(id, bytes);
    }
    return bytes;
  };
}

applyWeriftFixes();
