/**
 * The wire between the server and a recording's worker process: one AF_UNIX socket pair (the
 * child's fd 3), carrying length-prefixed messages both ways, in order. Order matters: a source
 * is added before its first frame, and a stop comes after the last one, so control and media
 * share one channel instead of Node's IPC channel beside a media pipe.
 *
 * A message: u32 length of what follows | u8 type | u32 header length | JSON header | payload.
 * The payload (an encoded frame, an MP4 segment) is written as its own chunk (writev), never
 * copied into a combined buffer by the sender. Pure apart from the socket it is given.
 */
import type { Socket } from 'node:net';

/** Server → worker. */
export const enum ToWorker {
  Init = 1,
  AddSource = 2,
  RemoveSource = 3,
  Video = 4,
  Audio = 5,
  Stop = 6,
  Debug = 7,
  SinkDone = 8,
  /** The server's heartbeat (every BEAT_MS): its event loop runs (see UpstreamClock). */
  Beat = 9,
}

/** How often the server sends `Beat` to a recording's worker. */
export const BEAT_MS = 100;
/** A silence from the server longer than this is a stall of the server (or of the worker): see UpstreamClock. */
export const BEAT_SLACK_MS = 300;

/** Worker → server. */
export const enum FromWorker {
  Ready = 101,
  State = 102,
  Stats = 103,
  /** An encoded picture: header { t: tick, k: keyframe }, payload an H.264 access unit. */
  Video = 104,
  Keyframe = 105,
  SinkFinish = 106,
  SinkAbort = 107,
  Checkpoint = 108,
  Fatal = 109,
  /** An AAC frame: header { p: sample position }, payload the raw frame. */
  Audio = 110,
}

export interface Message {
  type: number;
  header: any;
  payload: Buffer | null;
}

const PREFIX = 9;
/** A message bigger than this is a protocol error (the largest real one is an MP4 fragment). */
export const MAX_MESSAGE = 64 * 1024 * 1024;

/** Encodes one message as the chunks to write: prefix + header, then the payload unchanged. */
export function encode(type: number, header: unknown, payload?: Buffer | null): Buffer[] {
  const json = Buffer.from(header === undefined ? '{}' : JSON.stringify(header));
  const plen = payload ? payload.length : 0;
  const head = Buffer.allocUnsafe(PREFIX + json.length);
  head.writeUInt32BE(1 + 4 + json.length + plen, 0);
  head.writeUInt8(type, 4);
  head.writeUInt32BE(json.length, 5);
  json.copy(head, PREFIX);
  return payload && plen ? [head, payload] : [head];
}

/** Writes a message; several messages written in one turn go out as one writev (cork). */
export function send(socket: Socket, type: number, header: unknown, payload?: Buffer | null): boolean {
  if (socket.destroyed || !socket.writable) return false;
  const chunks = encode(type, header, payload);
  if (chunks.length === 1) return socket.write(chunks[0]);
  socket.cork();
  socket.write(chunks[0]);
  const ok = socket.write(chunks[1]);
  process.nextTick(() => socket.uncork());
  return ok;
}

/**
 * Reassembles messages from a byte stream. The payload of a message is a view into the received
 * chunk when it arrived whole in one (no copy), otherwise one concatenation.
 */
export class MessageReader {
  #chunks: Buffer[] = [];
  #len = 0;

  push(chunk: Buffer, onMessage: (m: Message) => void): void {
    this.#chunks.push(chunk);
    this.#len += chunk.length;
    for (;;) {
      if (this.#len < 4) return;
      if (this.#chunks[0].length < 4) this.#flatten();
      const size = this.#chunks[0].readUInt32BE(0);
      if (size < 5 || size > MAX_MESSAGE) throw new Error(`worker protocol: bad message size ${size}`);
      if (this.#len < 4 + size) return;
      if (this.#chunks[0].length < 4 + size) this.#flatten();
      const buf = this.#chunks[0];
      const type = buf.readUInt8(4);
      const hlen = buf.readUInt32BE(5);
      if (hlen > size - 5) throw new Error('worker protocol: bad header length');
      const header = JSON.parse(buf.toString('utf8', PREFIX, PREFIX + hlen));
      const payload = size - 5 - hlen > 0 ? buf.subarray(PREFIX + hlen, 4 + size) : null;
      const rest = buf.subarray(4 + size);
      if (rest.length) this.#chunks[0] = rest;
      else this.#chunks.shift();
      this.#len -= 4 + size;
      onMessage({ type, header, payload });
    }
  }

  #flatten(): void {
    this.#chunks = [Buffer.concat(this.#chunks, this.#len)];
  }
}
