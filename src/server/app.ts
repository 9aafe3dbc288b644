import fs from 'node:fs';
import path from 'node:path';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Config } from '../config';
import { TesseraError, toTesseraError } from '../errors';
import type { Logger } from '../logger';
import { registry } from '../metrics';
import type { MediaRange } from '../storage/Sink';
import { bearerMatches } from './auth';
import type { Conference } from './Conference';
import { isObject, validateLayout, validateRoomId } from './validation';

export const PUBLIC_DIR = path.join(__dirname, 'public');

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
 * The HTTP side: REST API (README "REST"), health/readiness/metrics, the meeting and recordings
 * pages. Errors are `{ error: { code, message } }` with the registry's HTTP status.
 */
export function createApp(init: { config: Readonly<Config>; conference: Conference; logger: Logger; limits: AppLimits; isReady: () => boolean }): express.Express {
  const { config, conference } = init;
  const recorder = conference.recorder;
  const log = init.logger.child({ component: 'http' });
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', false);

  app.get('/healthz', (_req, res) => {
    res.json({ ok: true });
  });
  app.get('/readyz', (_req, res) => {
    const ready = init.isReady();
    res.status(ready ? 200 : 503).json({ ready, draining: conference.draining });
  });
  app.get('/metrics', asyncRoute(async (_req, res) => {
    res.set('Content-Type', registry.contentType);
    res.send(await registry.metrics());
  }));

  // --- pages ---------------------------------------------------------------------------
  const page = (file: string) => (_req: Request, res: Response) => {
    res.set('Cache-Control', 'no-store');
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
    res.set('Cache-Control', 'no-store');
    res.type('html').send(frontDoor);
  });
  app.use('/static', express.static(PUBLIC_DIR, { index: false, maxAge: 0 }));

  // --- REST --------------------------------------------------------------------------
  const api = express.Router();
  api.use((req, _res, next) => {
    if (config.apiToken && !bearerMatches(req.get('authorization'), config.apiToken)) {
      next(new TesseraError('REC_ERR_UNAUTHORIZED', 'this API needs Authorization: Bearer <API_TOKEN>'));
      return;
    }
    next();
  });
  api.use(express.json({ limit: init.limits.jsonLimit, strict: true }));

  api.post('/rooms/:roomId/recording', asyncRoute((req, res) => {
    const roomId = validateRoomId(req.params.roomId);
    const body: unknown = req.body ?? {};
    if (!isObject(body)) throw new TesseraError('REC_ERR_BAD_REQUEST', 'body must be a JSON object');
    const layout = validateLayout(body.layout);
    res.status(201).json(conference.startRecording(roomId, layout));
  }));
  api.delete('/rooms/:roomId/recording', asyncRoute(async (req, res) => {
    const roomId = validateRoomId(req.params.roomId);
    res.status(200).json(await conference.stopRecording(roomId));
  }));
  api.get('/recordings', asyncRoute(async (req, res) => {
    const roomId = req.query.roomId === undefined ? undefined : validateRoomId(req.query.roomId);
    res.json({ recordings: await recorder.list(roomId) });
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
  api.get('/recordings/:id/media', asyncRoute(async (req, res) => {
    const id = recordingId(req.params.id);
    const url = await recorder.presignMedia(id);
    if (url) {
      res.redirect(302, url);
      return;
    }
    const whole = await recorder.openMedia(id);
    if (!whole) throw new TesseraError('REC_ERR_NOT_FOUND', 'no media for this recording');
    const size = whole.size;
    const range = parseRange(req.get('range'), size);
    res.set('Accept-Ranges', 'bytes');
    res.set('Content-Type', 'video/mp4');
    res.set('Cache-Control', 'no-store');
    if (range === 'invalid') {
      destroy(whole.stream);
      res.status(416).set('Content-Range', `bytes */${size}`).end();
      return;
    }
    let stream = whole.stream;
    if (range) {
      destroy(whole.stream);
      const part = await recorder.openMedia(id, range);
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
  }));
  api.delete('/recordings/:id', asyncRoute(async (req, res) => {
    await recorder.delete(recordingId(req.params.id));
    res.status(204).end();
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

function destroy(s: NodeJS.ReadableStream): void {
  (s as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
}
