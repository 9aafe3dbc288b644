import type { ErrorBody } from '../errors';
import type { Manifest, RecordingInfo, RecordingParticipant } from './types';

/** What a continuing worker carries over from the manifest the server kept (see RecordingResume). */
export interface LedgerResume {
  startedAt: string;
  participants: RecordingParticipant[];
  layouts: Manifest['layouts'];
  interruptions: NonNullable<Manifest['interruptions']>;
}

/**
 * The record a recording keeps of itself, for its public info and its manifest: when it started,
 * ended and became available, who took part and when (one entry per participant, across leaves
 * and rejoins), the layout of each epoch, the gaps dead workers left, its error and its size.
 * Only bookkeeping: it starts nothing and decides nothing. The clock is injected.
 */
export class RecordingLedger {
  #now: () => Date;
  #startedAt: Date;
  #endedAt: Date | null = null;
  #availableAt: Date | null = null;
  #error: ErrorBody | null = null;
  #bytes = 0;
  #participants = new Map<string, RecordingParticipant>();
  #layouts: Manifest['layouts'] = [];
  #interruptions: NonNullable<Manifest['interruptions']> = [];

  constructor(o: { now?: () => Date; resume?: LedgerResume } = {}) {
    this.#now = o.now ?? (() => new Date());
    this.#startedAt = this.#now();
    const r = o.resume;
    if (r) {
      this.#startedAt = new Date(r.startedAt);
      // Whoever the last worker saw is not known to be here still: they count as left until
      // their source is added again (which clears leftAt).
      const now = this.#now().toISOString();
      for (const p of r.participants) this.#participants.set(p.id, { ...p, leftAt: p.leftAt ?? now });
      this.#layouts = [...r.layouts];
      this.#interruptions = [...r.interruptions];
    }
  }

  get startedAt(): Date {
    return this.#startedAt;
  }

  /**
   * The clock started: startedAt becomes the wall time of the file's t = 0, so a participant's
   * joinedAt/leftAt minus startedAt is where that happens in the MP4. Until now it was the
   * request's time. Returns how long after the request that was (ms).
   */
  clockStarted(): number {
    const requested = this.#startedAt;
    this.#startedAt = this.#now();
    return this.#startedAt.getTime() - requested.getTime();
  }

  /** A participant's camera was added: a new entry, or one who left is back (same entry). */
  joined(participantId: string, name: string): void {
    const p = this.#participants.get(participantId);
    if (p) delete p.leftAt;
    else this.#participants.set(participantId, { id: participantId, name, joinedAt: this.#now().toISOString() });
  }

  /** A participant's camera was removed. */
  left(participantId: string): void {
    const p = this.#participants.get(participantId);
    if (p) p.leftAt = this.#now().toISOString();
  }

  /** An epoch started with this layout (`tiles`: the source ids in tile order). */
  layout(preset: string, tiles: string[], smallTiles: boolean): void {
    this.#layouts.push({ at: this.#now().toISOString(), preset, tiles, ...(smallTiles ? { smallTiles: true } : {}) });
  }

  /** The recording stopped or failed (the first of the two counts). */
  ended(): void {
    this.#endedAt ??= this.#now();
  }

  available(at: Date, bytes: number): void {
    this.#availableAt = at;
    this.#bytes = bytes;
  }

  failed(error: ErrorBody): void {
    this.#error = error;
    this.ended();
  }

  /** The ledger's part of the public info (copies: the caller may change them). */
  info(): Pick<RecordingInfo, 'startedAt' | 'participants' | 'endedAt' | 'availableAt' | 'bytes' | 'error'> {
    return {
      startedAt: this.#startedAt.toISOString(),
      participants: [...this.#participants.values()].map((p) => ({ ...p })),
      ...(this.#endedAt ? { endedAt: this.#endedAt.toISOString() } : {}),
      ...(this.#availableAt ? { availableAt: this.#availableAt.toISOString() } : {}),
      ...(this.#bytes ? { bytes: this.#bytes } : {}),
      ...(this.#error ? { error: { ...this.#error } } : {}),
    };
  }

  /** The ledger's part of the manifest beyond the info. */
  manifest(): Pick<Manifest, 'layouts' | 'interruptions'> {
    return {
      layouts: this.#layouts.map((l) => ({ ...l, tiles: [...l.tiles] })),
      ...(this.#interruptions.length ? { interruptions: this.#interruptions.map((i) => ({ ...i })) } : {}),
    };
  }
}
