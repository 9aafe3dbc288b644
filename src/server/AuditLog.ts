import type { Logger } from '../logger';

/** Who did something: a REST credential, a participant, or the server itself. */
export interface AuditActor {
  kind: 'api' | 'participant' | 'system';
  /** `api:<credential fingerprint>`, a participant id, or `server`. */
  id: string;
  name?: string;
  role: string;
  /** The peer address of the request or socket. */
  source?: string;
}

export type AuditEventName =
  | 'recording.started'
  | 'recording.stopped'
  | 'recording.downloaded'
  | 'recording.deleted'
  | 'recording.expired'
  | 'recording.erased'
  | 'recording.hold'
  | 'recording.rendered'
  | 'consent.given'
  | 'consent.declined';

export interface AuditEvent {
  at: string;
  event: AuditEventName;
  actor: AuditActor;
  roomId?: string;
  recordingId?: string;
  detail?: Record<string, unknown>;
}

/** Where audit lines are kept beside the recordings (FileStorage, S3Storage). */
export interface AuditStore {
  appendAudit(line: string): Promise<void>;
  readAudit(): Promise<string[]>;
}

/**
 * The append-only audit trail: one JSON line per event (recording started, stopped, downloaded,
 * deleted, expired, erased, held; consent given or declined) with actor, role, room, recording,
 * time and source address. Every event goes to the log stream at once and to the storage beside
 * the recordings, in order (one append at a time); a storage failure is logged, never thrown at
 * the action being audited. Without a store (tests with a stand-in recorder) the last events are
 * kept in memory for `query`.
 */
export class AuditLog {
  readonly #store: AuditStore | null;
  readonly #log: Logger;
  readonly #now: () => number;
  #tail: Promise<void> = Promise.resolve();
  readonly #memory: AuditEvent[] = [];

  constructor(init: { store: AuditStore | null; logger: Logger; now?: () => number }) {
    this.#store = init.store;
    this.#log = init.logger.child({ component: 'audit' });
    this.#now = init.now ?? Date.now;
  }

  record(e: Omit<AuditEvent, 'at'>): AuditEvent {
    const event: AuditEvent = { at: new Date(this.#now()).toISOString(), ...e };
    this.#log.info({ audit: event }, e.event);
    if (!this.#store) {
      this.#memory.push(event);
      if (this.#memory.length > 10_000) this.#memory.shift();
      return event;
    }
    const line = JSON.stringify(event);
    const store = this.#store;
    this.#tail = this.#tail.then(() => store.appendAudit(line)).catch((err: unknown) => this.#log.error({ err, event: e.event }, 'audit event not stored'));
    return event;
  }

  /** Resolves once every event recorded so far is stored. */
  flushed(): Promise<void> {
    return this.#tail;
  }

  async query(filter: { recordingId?: string; roomId?: string }): Promise<AuditEvent[]> {
    await this.#tail;
    let events: AuditEvent[];
    if (!this.#store) events = [...this.#memory];
    else {
      events = [];
      for (const line of await this.#store.readAudit()) {
        try {
          events.push(JSON.parse(line) as AuditEvent);
        } catch {
          /* a torn last line (crash mid-append) is not an event */
        }
      }
    }
    return events.filter((e) => (!filter.recordingId || e.recordingId === filter.recordingId) && (!filter.roomId || e.roomId === filter.roomId)).sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
  }
}
