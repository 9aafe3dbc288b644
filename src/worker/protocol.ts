/**
 * The wire between the server and a recording's worker process: one AF_UNIX socket pair (the
 * child's fd 3), carrying length-prefixed messages both ways, in order. Order matters: a source
 * is added before its first frame, and a stop comes after the last one, so control and media
 * share one channel instead of Node's IPC channel beside a media pipe.
 *
 * A message: u32 length of what follows | u8 type | u32 header length | JSON header | payload.
 * The messages of one event-loop turn are written together, as one buffer (see Outbox). Pure
 * apart from the socket it is given.
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

/**
 * Messages written in one turn of the event loop leave together, as one buffer in one write, at
 * the loop's check phase (setImmediate). A recording's media is hundreds of small messages a
 * second (each participant's Opus packet every 20 ms, each picture): written one by one, each paid
 * a JSON buffer, a header buffer, a stream write, a cork and a nextTick, and each was one read on
 * the other side. Measured on day 15 (docs/workers.md) this was most of the server's own cost of a
 * recording. The delay it adds is at most the rest of the current loop turn.
 *
 * A message sent lazily (`lazyMs` > 0) may wait up to that long for others to share its write;
 * any other message takes the queue with it at the end of the turn, so order is kept and control
 * never waits. Lazy writes leave on a grid of `lazyMs` (wall clock), so every outbox of a process
 * with the same delay flushes in the same wake-up. Lazy are the worker's encoded pictures and AAC
 * frames (LAZY_MS, 50 ms: their timestamps travel with them, and the muxer does not care when),
 * so the server reads a few times a second, and the server's heartbeat (BEAT_LAZY_MS), which
 * mostly leaves with the next picture. The participants' media to the worker is not: a picture
 * is shown from the first tick after it reaches the worker, and a delay on a fixed grid aliases
 * with the frame rate (see the note at BEAT_LAZY_MS).
 */
class Outbox {
  #types: number[] = [];
  #headers: string[] = [];
  #payloads: Array<Buffer | null> = [];
  #bytes = 0;
  #immediate: NodeJS.Immediate | null = null;
  #timer: NodeJS.Timeout | null = null;
  readonly #flush = () => this.flush();

  constructor(private readonly socket: Socket) {}

  /** Bytes queued here and not yet handed to the socket. */
  get pending(): number {
    return this.#bytes;
  }

  add(type: number, header: unknown, payload: Buffer | null | undefined, lazyMs: number): void {
    const json = header === undefined ? '{}' : JSON.stringify(header);
    this.#types.push(type);
    this.#headers.push(json);
    this.#payloads.push(payload && payload.length ? payload : null);
    // Header bytes as UTF-8 can be up to 3 per UTF-16 unit; counted exactly at flush.
    this.#bytes += PREFIX + json.length + (payload ? payload.length : 0);
    if (this.#immediate) return;
    if (lazyMs <= 0) this.#immediate = setImmediate(this.#flush);
    else if (!this.#timer) this.#timer = setTimeout(this.#flush, lazyMs - (Date.now() % lazyMs));
  }

  flush(): void {
    if (this.#immediate) clearImmediate(this.#immediate);
    if (this.#timer) clearTimeout(this.#timer);
    this.#immediate = this.#timer = null;
    const n = this.#types.length;
    if (!n) return;
    let total = 0;
    const lens = new Array<number>(n);
    for (let i = 0; i < n; i++) {
      lens[i] = Buffer.byteLength(this.#headers[i]);
      total += PREFIX + lens[i] + (this.#payloads[i]?.length ?? 0);
    }
    const buf = Buffer.allocUnsafe(total);
    let o = 0;
    for (let i = 0; i < n; i++) {
      const payload = this.#payloads[i];
      const plen = payload ? payload.length : 0;
      buf.writeUInt32BE(1 + 4 + lens[i] + plen, o);
      buf.writeUInt8(this.#types[i], o + 4);
      buf.writeUInt32BE(lens[i], o + 5);
      buf.write(this.#headers[i], o + PREFIX, lens[i], 'utf8');
      o += PREFIX + lens[i];
      if (payload) o += payload.copy(buf, o);
    }
    this.#types = [];
    this.#headers = [];
    this.#payloads = [];
    this.#bytes = 0;
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(buf);
  }
}

/** How long the worker's encoded media may wait for company on its way to the server (see Outbox). */
export const LAZY_MS = 50;

/**
 * How long the heartbeat may wait for company on its way to the worker: it mostly leaves with the
 * next picture instead of waking the worker on its own (BEAT_SLACK_MS is 300).
 *
 * The participants' media is not sent lazily. Tried on day 17 with 20 ms: the worker's CPU fell by
 * about 0.01 cores, but a picture is stamped with the first tick after it reaches the worker, and
 * a delay on a 20-ms grid against 33.3-ms ticks puts two pictures of one participant into one tick
 * and none into the next for some phases: a simulation gave 13 % of ticks without a new picture
 * per tile on average (33 % at worst), and the pipeline suite's churn case saw whole-frame
 * repeats. A grid with the ticks' own period and phase would not alias (docs/workers.md, day 17).
 */
export const BEAT_LAZY_MS = 20;

const outboxes = new WeakMap<Socket, Outbox>();

function outbox(socket: Socket): Outbox {
  let o = outboxes.get(socket);
  if (!o) outboxes.set(socket, (o = new Outbox(socket)));
  return o;
}

/**
 * Queues a message; it leaves with the others of this loop turn (or, with `lazyMs`, within that
 * many ms: see Outbox), in order. False if the socket is closed (the message is dropped).
 */
export function send(socket: Socket, type: number, header: unknown, payload?: Buffer | null, lazyMs = 0): boolean {
  if (socket.destroyed || !socket.writable) return false;
  outbox(socket).add(type, header, payload, lazyMs);
  return true;
}

/** Hands every queued message to the socket now (before ending it, or exiting). */
export function flush(socket: Socket): void {
  outboxes.get(socket)?.flush();
}

/** Bytes on their way to the other side and not yet taken by it: queued here plus the socket's buffer. */
export function backlog(socket: Socket): number {
  return (outboxes.get(socket)?.pending ?? 0) + socket.writableLength;
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
