/**
 * Opus packet facts from its TOC byte (RFC 6716, 3.1): how many 48 kHz samples it holds.
 * Pure; used to give each packet of a per-track recording its duration.
 */
const FRAME_SAMPLES_BY_CONFIG = (config: number): number => {
  if (config < 12) return [480, 960, 1920, 2880][config & 3]; // SILK: 10, 20, 40, 60 ms
  if (config < 16) return [480, 960][config & 1]; // hybrid: 10, 20 ms
  return [120, 240, 480, 960][config & 3]; // CELT: 2.5, 5, 10, 20 ms
};

/** Samples (at 48 kHz) in one Opus packet, or 0 for a packet too short or malformed to tell. */
export function opusPacketSamples(packet: Buffer): number {
  if (packet.length < 1) return 0;
  const toc = packet[0];
  const per = FRAME_SAMPLES_BY_CONFIG(toc >> 3);
  const code = toc & 3;
  if (code === 0) return per;
  if (code === 1 || code === 2) return 2 * per;
  if (packet.length < 2) return 0;
  const frames = packet[1] & 0x3f;
  const total = frames * per;
  return frames > 0 && total <= 5760 ? total : 0; // at most 120 ms in a packet
}
