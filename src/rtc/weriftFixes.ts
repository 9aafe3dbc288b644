import { TransportWideCC } from 'werift';

/**
 * Fixes to werift 0.24.4 behaviour we depend on, applied once when the RTC code loads.
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
 */
let applied = false;

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
}

applyWeriftFixes();
