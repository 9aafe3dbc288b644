/**
 * The one registry of errors a user, an operator or a script can see. Each code says whose fault
 * it is (`user` = the request was wrong, `system` = ours or a dependency's) and whether retrying
 * the same thing can help. Thrown as TesseraError; serialised as `{ code, message }`.
 */
export const ERRORS = {
  // input
  REC_ERR_BAD_REQUEST: { http: 400, who: 'user', retry: false },
  REC_ERR_INVALID_ROOM_ID: { http: 400, who: 'user', retry: false },
  REC_ERR_PAYLOAD_TOO_LARGE: { http: 413, who: 'user', retry: false },
  REC_ERR_UNAUTHORIZED: { http: 401, who: 'user', retry: false },
  REC_ERR_FORBIDDEN: { http: 403, who: 'user', retry: false },
  REC_ERR_ROOM_NOT_FOUND: { http: 404, who: 'user', retry: false },
  REC_ERR_ROOM_EMPTY: { http: 404, who: 'user', retry: false },
  REC_ERR_NOT_FOUND: { http: 404, who: 'user', retry: false },
  REC_ERR_ALREADY_RECORDING: { http: 409, who: 'user', retry: false },
  REC_ERR_NOT_RECORDING: { http: 409, who: 'user', retry: false },
  /** The room keeps TESSERA_MAX_RECORDINGS_PER_ROOM recordings already. */
  REC_ERR_ROOM_LIMIT: { http: 409, who: 'user', retry: false },
  /** The recording is under legal hold: it cannot be deleted or erased until released. */
  REC_ERR_HELD: { http: 409, who: 'user', retry: false },
  REC_ERR_NOT_JOINED: { http: 409, who: 'user', retry: false },
  /** A re-render was asked of a recording made without tracks (or whose tracks hold nothing). */
  REC_ERR_NO_TRACKS: { http: 409, who: 'user', retry: false },
  REC_ERR_UNKNOWN_LAYOUT: { http: 400, who: 'user', retry: false },
  REC_ERR_BAD_SIGNAL: { http: 400, who: 'user', retry: false },
  /** The same identity joined the room again elsewhere: this seat was given to the new join. */
  REC_ERR_REPLACED: { http: 409, who: 'user', retry: false },
  // capacity and lifecycle
  REC_ERR_CAPACITY: { http: 503, who: 'system', retry: true },
  REC_ERR_DRAINING: { http: 503, who: 'system', retry: true },
  // pipeline
  REC_ERR_FFMPEG_START: { http: 500, who: 'system', retry: true },
  REC_ERR_ENCODER_DIED: { http: 500, who: 'system', retry: true },
  REC_ERR_ENCODER_STALLED: { http: 500, who: 'system', retry: true },
  REC_ERR_WORKER_DIED: { http: 500, who: 'system', retry: true },
  REC_ERR_STOP_TIMEOUT: { http: 500, who: 'system', retry: true },
  REC_ERR_SINK: { http: 500, who: 'system', retry: true },
  REC_ERR_UPLOAD: { http: 502, who: 'system', retry: true },
  REC_ERR_INTERRUPTED: { http: 500, who: 'system', retry: false },
  REC_ERR_SHUTDOWN: { http: 503, who: 'system', retry: true },
  REC_ERR_INTERNAL: { http: 500, who: 'system', retry: true },
} as const;

export type ErrorCode = keyof typeof ERRORS;

export interface ErrorBody {
  code: ErrorCode;
  message: string;
}

export class TesseraError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TesseraError';
    this.code = code;
  }
  get http(): number {
    return ERRORS[this.code].http;
  }
  get who(): 'user' | 'system' {
    return ERRORS[this.code].who;
  }
  get retryable(): boolean {
    return ERRORS[this.code].retry;
  }
  toJSON(): ErrorBody {
    return { code: this.code, message: this.message };
  }
}

/** Any thrown value as a TesseraError (unknown errors become REC_ERR_INTERNAL). */
export function toTesseraError(err: unknown, fallback: ErrorCode = 'REC_ERR_INTERNAL'): TesseraError {
  if (err instanceof TesseraError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new TesseraError(fallback, message, { cause: err });
}
