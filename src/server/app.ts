import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Config } from '../config';
import { TesseraError, toTesseraError } from '../errors';
import type { Logger } from '../logger';
import { registry } from '../metrics';
import type { MediaRange } from '../storage/Sink';
import { bearerMatches } from './auth';
import { mediaSignatureValid, signedMediaPath } from './mediaUrl';
import type { Conference } from './Conference';
import { developmentRequestRefusal } from './origin';
import { pagePolicy } from './pagePolicy';
import type { AuditActor } from './AuditLog';
import { isObject, validateLayout, validateName, validateRoomId } from './validation';

export const PUBLIC_DIR = path.join(__dirname, 'public');

/** GET /api/recordings: recordings per page by default, and at most. */
const DEFAULT_PAGE = 100;
const MAX_PAGE = 1000;

export interface AppLimits {
  /** express.json() body limit. */
  jsonLimit: string;
}

/** `bytes=a-b`, `bytes=a-`, `bytes=-n` → an inclusive range within size, or 'invalid'. */
export function parseRange(header: string | undefined, size: number): MediaRange | null | 'invalid' {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return 'invalid';
  let start: number;
  let end: number;
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0) return 'invalid';
    start = Math.max(0, size - n);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start >= size || start > end) return 'invalid';
  return { start, end };
}

const asyncRoute =
  (fn: (req: Request, res: Response) => Promise<unknown> | unknown) =>
  (req: Request, res: Response, next: NextFunction) => {
    Promise.resolve()
      .then(() => fn(req, res))
      .catch(next);
  };

/**
 * The HTTP side: REST API (docs/api.md), health/readiness/metrics, the meeting and recordings
 * pages. Errors are `{ error: { code, message } }` with the registry's HTTP status.
 */
export function createApp(init: { config: Readonly<Config>; conference: Conference; logger: Logger; limits: AppLimits; isReady: () => boolean }): express.Express {
  const { config, conference } = init;
  const recorder = conference.recorder;
  const log = init.logger.child({ component: 'http' });
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', false);

  app.use((req, _res, next) => {
    const refusal = developmentRequestRefusal(req.headers, config);
    next(refusal ? new TesseraError('REC_ERR_FORBIDDEN', refusal) : undefined);
  });

  app.use((_req, res, next) => {
    // Signed media URLs and room tokens travel in URLs: never hand them to another site.
    res.set('Referrer-Policy', 'no-referrer');
    // Every answer is what its Content-Type says: a recording or a JSON body is never run as a page.
    res.set('X-Content-Type-Options', 'nosniff');
    next();
  });

  app.get('/healthz', (_req, res) => {
    res.json({ ok: true });
  });
  app.get('/readyz', (_req, res) => {
    // The storage's own check (S3: what the bucket supports); a store that cannot take recordings
    // as configured, or could not be reached, keeps the pod out of service.
    const storage = recorder.storageStatus?.() ?? null;
    const ready = init.isReady() && storage?.ok !== false;
    res.status(ready ? 200 : 503).json({ ready, draining: conference.draining, storage });
  });
  app.get('/metrics', asyncRoute(async (_req, res) => {
    res.set('Content-Type', registry.contentType);
    res.send(await registry.metrics());
  }));

  // --- pages ---------------------------------------------------------------------------
  const policy = pagePolicy(config);
  const pageHeaders = (res: Response) => res.set({ 'Cache-Control': 'no-store', 'Content-Security-Policy': policy });
  const page = (file: string) => (_req: Request, res: Response) => {
    pageHeaders(res);
    res.sendFile(path.join(PUBLIC_DIR, file));
  };
  app.get('/r/:roomId', (req, res, next) => {
    try {
      validateRoomId(req.params.roomId);
    } catch (err) {
      const e = toTesseraError(err);
      res.status(e.http).type('text/plain').send(`${e.message}\n`);
      return;
    }
    page('meeting.html')(req, res);
    void next;
  });
  app.get('/recordings', page('recordings.html'));
  // The front door: start or join a meeting. The page is told whether this server admits
  // people by invitation only (AUTH_SECRET set), where a room and a name alone are refused.
  const frontDoor = fs.readFileSync(path.join(PUBLIC_DIR, 'index.html'), 'utf8').replace('{{AUTH}}', config.authSecret ? 'token' : 'open');
  app.get('/', (_req, res) => {
    pageHeaders(res);
    res.type('html').send(frontDoor);
  });
  // The pages name their icon; this is for clients that ask for the conventional path anyway.
  app.get('/favicon.ico', (_req, res) => {
    res.set('Cache-Control', 'public, max-age=86400');
    res.type('image/svg+xml').sendFile(path.join(PUBLIC_DIR, 'favicon.svg'));
  });
  app.use('/static', express.static(PUBLIC_DIR, { index: false, maxAge: 0 }));

  // --- REST --------------------------------------------------------------------------
  const api = express.Router();
  /** Who is calling (the audit trail's actor) and with which role; set by the check below. */
  const callers = new WeakMap<Request, AuditActor>();
  const actor = (req: Request): AuditActor => callers.get(req) ?? { kind: 'api', id: 'api:unknown', role: 'none', source: req.socket.remoteAddress };
  api.use((req, _res, next) => {
    const source = req.socket.remoteAddress;
    // A signed media URL stands for a credential for that one recording's media (see mediaUrl.ts).
    const media = /^\/recordings\/([A-Za-z0-9_-]{1,128})\/media$/.exec(req.path);
    if (media && (req.method === 'GET' || req.method === 'HEAD') && req.query.sig !== undefined) {
      const admins = config.apiCredentials.filter((c) => c.role === 'admin');
      if (admins.some((c) => mediaSignatureValid(c.token, media[1], req.query.expires, req.query.sig))) {
        callers.set(req, { kind: 'api', id: 'signed-url', role: 'read', source });
        next();
        return;
      }
    }
    if (config.apiCredentials.length) {
      const header = req.get('authorization');
      const cred = config.apiCredentials.find((c) => bearerMatches(header, c.token));
      if (!cred) {
        next(new TesseraError('REC_ERR_UNAUTHORIZED', 'this API needs Authorization: Bearer <API_TOKEN or API_READ_TOKEN>'));
        return;
      }
      // Read-only credentials read; changes, erasure and the audit trail need an admin one.
      const reads = (req.method === 'GET' || req.method === 'HEAD') && !req.path.startsWith('/audit');
      if (cred.role !== 'admin' && !reads) {
        next(new TesseraError('REC_ERR_FORBIDDEN', 'this credential is read-only (API_READ_TOKEN); this call needs API_TOKEN'));
        return;
      }
      callers.set(req, { kind: 'api', id: `api:${fingerprint(cred.token)}`, role: cred.role, source });
      next();
      return;
    }
    // Without a credential the API is this machine's only. Configuration refuses a wide HOST
    // without API_TOKEN; this also holds when the server is made to listen wider some other way.
    if (!isLoopbackAddress(source)) {
      next(new TesseraError('REC_ERR_UNAUTHORIZED', 'without API_TOKEN this API answers requests from this machine only'));
      return;
    }
    callers.set(req, { kind: 'api', id: 'api:local', role: 'admin', source });
    next();
  });
  api.use(express.json({ limit: init.limits.jsonLimit, strict: true }));

  api.post('/rooms/:roomId/recording', asyncRoute((req, res) => {
    const roomId = validateRoomId(req.params.roomId);
    const body: unknown = req.body ?? {};
    if (!isObject(body)) throw new TesseraError('REC_ERR_BAD_REQUEST', 'body must be a JSON object');
    const layout = validateLayout(body.layout);
    const retentionDays = body.retentionDays;
    if (retentionDays !== undefined && (typeof retentionDays !== 'number' || !Number.isInteger(retentionDays) || retentionDays < 1 || retentionDays > config.retention.maxDays)) {
      throw new TesseraError('REC_ERR_BAD_REQUEST', `retentionDays must be an integer from 1 to ${config.retention.maxDays}`);
    }
    if (body.consent !== undefined && body.consent !== 'required') throw new TesseraError('REC_ERR_BAD_REQUEST', 'consent must be "required" or absent');
    if (body.tracks !== undefined && typeof body.tracks !== 'boolean') throw new TesseraError('REC_ERR_BAD_REQUEST', 'tracks must be true or false');
    res.status(201).json(conference.startRecording(roomId, layout, actor(req), { retentionDays, consent: body.consent, tracks: body.tracks }));
  }));
  api.delete('/rooms/:roomId/recording', asyncRoute(async (req, res) => {
    const roomId = validateRoomId(req.params.roomId);
    res.status(200).json(await conference.stopRecording(roomId, actor(req)));
  }));
  api.get('/recordings', asyncRoute(async (req, res) => {
    const roomId = req.query.roomId === undefined ? undefined : validateRoomId(req.query.roomId);
    const limitRaw = req.query.limit;
    if (limitRaw !== undefined && (typeof limitRaw !== 'string' || !/^\d{1,4}$/.test(limitRaw) || Number(limitRaw) < 1 || Number(limitRaw) > MAX_PAGE)) {
      throw new TesseraError('REC_ERR_BAD_REQUEST', `limit must be an integer from 1 to ${MAX_PAGE}`);
    }
    const cursor = req.query.cursor;
    if (cursor !== undefined && (typeof cursor !== 'string' || !/^[A-Za-z0-9_-]{1,400}$/.test(cursor))) throw new TesseraError('REC_ERR_BAD_REQUEST', 'cursor must be a nextCursor from a previous page');
    res.json(await recorder.page({ roomId, limit: limitRaw === undefined ? DEFAULT_PAGE : Number(limitRaw), cursor }));
  }));
  const recordingId = (v: unknown): string => {
    if (typeof v !== 'string' || !/^[A-Za-z0-9_-]{1,128}$/.test(v)) throw new TesseraError('REC_ERR_NOT_FOUND', 'no such recording');
    return v;
  };
  api.get('/recordings/:id', asyncRoute(async (req, res) => {
    const info = await recorder.get(recordingId(req.params.id));
    if (!info) throw new TesseraError('REC_ERR_NOT_FOUND', 'no such recording');
    res.json(info);
  }));
  api.get('/recordings/:id/media-url', asyncRoute(async (req, res) => {
    const id = recordingId(req.params.id);
    const found = await recorder.get(id);
    if (!found) throw new TesseraError('REC_ERR_NOT_FOUND', 'no such recording');
    const expires = Math.floor(Date.now() / 1000) + config.mediaUrlTtlSec;
    const url = config.apiToken ? signedMediaPath(config.apiToken, id, expires) : `/api/recordings/${encodeURIComponent(id)}/media`;
    conference.audit.record({ event: 'recording.downloaded', actor: actor(req), roomId: found.roomId, recordingId: id, detail: { via: 'signed url', expiresAt: new Date(expires * 1000).toISOString() } });
    res.set('Cache-Control', 'no-store');
    res.json({ url, expiresAt: new Date(expires * 1000).toISOString() });
  }));
  api.get('/recordings/:id/media', asyncRoute(async (req, res) => {
    const id = recordingId(req.params.id);
    const url = await recorder.presignMedia(id);
    if (url) {
      res.redirect(302, url);
      return;
    }
    await sendMedia(req, res, 'video/mp4', (range) => recorder.openMedia(id, range), async (range) => {
      // One event per download, not per Range request of a player (a signed URL's issue is one).
      const who = actor(req);
      if (who.id !== 'signed-url' && req.method === 'GET' && (range === null || (range !== 'invalid' && range.start === 0))) {
        conference.audit.record({ event: 'recording.downloaded', actor: who, roomId: (await recorder.get(id))?.roomId, recordingId: id });
      }
    }, log);
  }));
  api.get('/recordings/:id/tracks/:trackId/media', asyncRoute(async (req, res) => {
    const id = recordingId(req.params.id);
    const trackId = req.params.trackId;
    if (typeof trackId !== 'string' || !/^t\d{1,6}$/.test(trackId)) throw new TesseraError('REC_ERR_BAD_REQUEST', 'trackId must look like t1');
    if (!recorder.openTrack) throw new TesseraError('REC_ERR_NOT_FOUND', 'this recorder keeps no tracks');
    const info = await recorder.get(id);
    const track = info?.tracks?.find((t) => t.id === trackId);
    if (!info || !track) throw new TesseraError('REC_ERR_NOT_FOUND', 'no such track');
    await sendMedia(req, res, track.container === 'mkv' ? 'video/x-matroska' : track.kind === 'microphone' || track.kind === 'screen-audio' ? 'audio/webm' : 'video/webm', (range) => recorder.openTrack!(id, trackId, range), async (range) => {
      if (req.method === 'GET' && (range === null || (range !== 'invalid' && range.start === 0))) {
        conference.audit.record({ event: 'recording.downloaded', actor: actor(req), roomId: info.roomId, recordingId: id, detail: { track: trackId } });
      }
    }, log);
  }));
  // Re-renders: a finished recording with tracks composed again with another layout (a job).
  api.post('/recordings/:id/renders', asyncRoute(async (req, res) => {
    const id = recordingId(req.params.id);
    const body: unknown = req.body ?? {};
    if (!isObject(body) || typeof body.layout !== 'string') throw new TesseraError('REC_ERR_BAD_REQUEST', 'body must be { "layout": "<preset>" }');
    const layout = validateLayout(body.layout)!;
    if (!recorder.startRender) throw new TesseraError('REC_ERR_INTERNAL', 'this recorder cannot re-render');
    const render = await recorder.startRender(id, layout);
    conference.audit.record({ event: 'recording.rendered', actor: actor(req), recordingId: id, roomId: (await recorder.get(id))?.roomId, detail: { renderId: render.id, layout } });
    res.status(202).json(render);
  }));
  api.get('/recordings/:id/renders/:renderId/media', asyncRoute(async (req, res) => {
    const id = recordingId(req.params.id);
    const renderId = req.params.renderId;
    if (typeof renderId !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(renderId)) throw new TesseraError('REC_ERR_NOT_FOUND', 'no such render');
    if (!recorder.openRender) throw new TesseraError('REC_ERR_NOT_FOUND', 'this recorder keeps no renders');
    const url = await recorder.presignRender?.(id, renderId);
    if (url) {
      res.redirect(302, url);
      return;
    }
    await sendMedia(req, res, 'video/mp4', (range) => recorder.openRender!(id, renderId, range), async (range) => {
      // A render shows the same people as its recording: its download is audited alike.
      if (req.method === 'GET' && (range === null || (range !== 'invalid' && range.start === 0))) {
        conference.audit.record({ event: 'recording.downloaded', actor: actor(req), recordingId: id, roomId: (await recorder.get(id))?.roomId, detail: { renderId } });
      }
    }, log);
  }));
  api.delete('/recordings/:id', asyncRoute(async (req, res) => {
    const id = recordingId(req.params.id);
    const gone = await recorder.delete(id);
    conference.audit.record({ event: 'recording.deleted', actor: actor(req), recordingId: id, roomId: gone ? gone.roomId : undefined });
    res.status(204).end();
  }));
  api.put('/recordings/:id/hold', asyncRoute(async (req, res) => {
    const id = recordingId(req.params.id);
    const body: unknown = req.body;
    if (!isObject(body) || typeof body.hold !== 'boolean') throw new TesseraError('REC_ERR_BAD_REQUEST', 'body must be { "hold": true | false }');
    if (!recorder.setHold) throw new TesseraError('REC_ERR_INTERNAL', 'this recorder has no legal hold');
    const info = await recorder.setHold(id, body.hold);
    conference.audit.record({ event: 'recording.hold', actor: actor(req), recordingId: id, roomId: info.roomId, detail: { hold: body.hold } });
    res.json(info);
  }));
  // Erasure: every recording a person appears in, by participant id or name, deleted (held ones
  // are reported and kept), each logged.
  api.post('/erasure', asyncRoute(async (req, res) => {
    const body: unknown = req.body;
    if (!isObject(body)) throw new TesseraError('REC_ERR_BAD_REQUEST', 'body must be { "participantId" } or { "name" }');
    const participantId = body.participantId;
    const name = body.name;
    if ((participantId === undefined) === (name === undefined)) throw new TesseraError('REC_ERR_BAD_REQUEST', 'give exactly one of participantId and name');
    if (participantId !== undefined && (typeof participantId !== 'string' || participantId.length < 1 || participantId.length > 128)) throw new TesseraError('REC_ERR_BAD_REQUEST', 'participantId must be a string');
    if (name !== undefined) validateName(name);
    if (!recorder.findByPerson) throw new TesseraError('REC_ERR_INTERNAL', 'this recorder cannot search recordings by person');
    const who = { participantId: participantId as string | undefined, name: name as string | undefined };
    const erased: string[] = [];
    const held: string[] = [];
    for (const info of await recorder.findByPerson(who)) {
      if (info.legalHold) {
        held.push(info.id);
        continue;
      }
      await recorder.delete(info.id);
      erased.push(info.id);
      conference.audit.record({ event: 'recording.erased', actor: actor(req), recordingId: info.id, roomId: info.roomId, detail: who });
    }
    res.json({ erased, held });
  }));
  api.get('/audit', asyncRoute(async (req, res) => {
    const q = req.query;
    if (q.recordingId !== undefined && (typeof q.recordingId !== 'string' || !/^[A-Za-z0-9_-]{1,128}$/.test(q.recordingId))) throw new TesseraError('REC_ERR_BAD_REQUEST', 'recordingId must be a recording id');
    const roomId = q.roomId === undefined ? undefined : validateRoomId(q.roomId);
    res.json({ events: await conference.audit.query({ recordingId: q.recordingId as string | undefined, roomId }) });
  }));
  api.use((_req, _res, next) => next(new TesseraError('REC_ERR_NOT_FOUND', 'no such API route')));
  app.use('/api', api);

  app.use((err: unknown, _req: Request, res: Response, next: NextFunction) => {
    void next;
    let e: TesseraError;
    const status = (err as { status?: number; type?: string }).status;
    const type = (err as { type?: string }).type;
    if (type === 'entity.too.large') e = new TesseraError('REC_ERR_PAYLOAD_TOO_LARGE', `request body larger than ${init.limits.jsonLimit}`);
    else if (type === 'entity.parse.failed') e = new TesseraError('REC_ERR_BAD_REQUEST', 'request body is not valid JSON');
    else if (status && status >= 400 && status < 500 && !(err instanceof TesseraError)) e = new TesseraError('REC_ERR_BAD_REQUEST', (err as Error).message);
    else e = toTesseraError(err);
    if (e.who === 'system') log.error({ err }, 'request failed');
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.status(e.http).json({ error: e.toJSON() });
  });
  return app;
}

/** 127.0.0.0/8 and ::1, also as IPv4-mapped IPv6 (how a dual-stack socket reports them). */
export function isLoopbackAddress(addr: string | undefined): boolean {
  if (!addr) return false;
  const a = addr.startsWith('::ffff:') ? addr.slice(7) : addr;
  return a === '::1' || /^127\.\d+\.\d+\.\d+$/.test(a);
}

/** A credential's name in the audit trail: never the token, enough to tell two apart. */
function fingerprint(token: string): string {
  return createHash('sha256').update(token).digest('hex').slice(0, 8);
}

/**
 * Serves a stored file (a recording's MP4, one of its tracks or re-renders) with Range support: 200 whole, 206
 * for a range, 416 for a range it cannot satisfy. `opened` hears of each request (for audit).
 */
async function sendMedia(
  req: Request,
  res: Response,
  contentType: string,
  open: (range?: MediaRange) => Promise<{ size: number; stream: NodeJS.ReadableStream } | null>,
  opened: (range: MediaRange | null | 'invalid') => Promise<void>,
  log: Logger,
): Promise<void> {
  const whole = await open();
  if (!whole) throw new TesseraError('REC_ERR_NOT_FOUND', 'no media for this recording');
  const size = whole.size;
  const range = parseRange(req.get('range'), size);
  await opened(range);
  res.set('Accept-Ranges', 'bytes');
  res.set('Content-Type', contentType);
  res.set('Cache-Control', 'no-store');
  if (range === 'invalid') {
    destroy(whole.stream);
    res.status(416).set('Content-Range', `bytes */${size}`).end();
    return;
  }
  let stream = whole.stream;
  if (range) {
    destroy(whole.stream);
    const part = await open(range);
    if (!part) throw new TesseraError('REC_ERR_NOT_FOUND', 'no media for this recording');
    stream = part.stream;
    const end = range.end ?? size - 1;
    res.status(206);
    res.set('Content-Range', `bytes ${range.start}-${end}/${size}`);
    res.set('Content-Length', String(end - range.start + 1));
  } else {
    res.status(200);
    res.set('Content-Length', String(size));
  }
  if (req.method === 'HEAD') {
    destroy(stream);
    res.end();
    return;
  }
  res.on('close', () => destroy(stream));
  (stream as NodeJS.ReadableStream & { on: (e: string, f: (err: Error) => void) => void }).on('error', (err: Error) => {
    log.warn({ err }, 'media stream failed');
    res.destroy(err);
  });
  stream.pipe(res);
}

function destroy(s: NodeJS.ReadableStream): void {
  (s as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
}
