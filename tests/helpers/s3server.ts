import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Readable } from 'node:stream';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeAll } from '../../src/storage/writeAll';

/**
 * An S3-compatible HTTP endpoint for tests: path-style, objects and parts stored in a temp dir,
 * with the behaviour of S3 that Tessera relies on (and that `s3rver` lacks):
 * CreateMultipartUpload / UploadPart / CompleteMultipartUpload (part order, ETags, the 5 MiB
 * minimum for all parts but the last) / AbortMultipartUpload / ListMultipartUploads / ListParts,
 * PutObject, GetObject (Range), HeadObject, DeleteObject(s), ListObjectsV2, GetObjectTagging, PutObjectTagging.
 * SSE, metadata and tagging headers given at creation are stored and echoed like S3 does; every
 * request is recorded so tests can assert which headers arrived.
 *
 * Signatures are not verified (the SDK signs; the server only requires an Authorization header or
 * presigned query). Fault injection: one-shot faults matched per request (503 SlowDown, 500,
 * connection reset, a stall that never answers), and a switchable outage.
 */

export type S3Op =
  | 'CreateMultipartUpload' | 'UploadPart' | 'CompleteMultipartUpload' | 'AbortMultipartUpload'
  | 'ListMultipartUploads' | 'ListParts' | 'PutObject' | 'GetObject' | 'HeadObject'
  | 'DeleteObject' | 'DeleteObjects' | 'ListObjectsV2' | 'GetObjectTagging' | 'PutObjectTagging' | 'HeadBucket' | 'Unknown';

export interface RecordedRequest {
  op: S3Op;
  method: string;
  bucket: string;
  key: string;
  query: Record<string, string>;
  headers: http.IncomingHttpHeaders;
  at: number;
  /** Set when answered (undefined for faults that never answer). */
  status?: number;
  fault?: FaultKind;
  bodyBytes?: number;
}

export type FaultKind = 'slowdown' | '500' | 'reset' | 'stall';

export interface Fault {
  kind: FaultKind;
  /** Which requests it hits (default: any). */
  match?: (r: RecordedRequest) => boolean;
  /** How many matching requests it hits (default 1). */
  times?: number;
}

export interface S3TestServerOptions {
  buckets?: string[];
  /** Directory for data; a new temp dir by default (removed on close). */
  dir?: string;
  /** S3's minimum size for all parts but the last. */
  minPartSize?: number;
}

interface StoredObject {
  size: number;
  etag: string;
  lastModified: Date;
  contentType: string;
  meta: Record<string, string>;
  sse: string | null;
  kmsKeyId: string | null;
  tags: Array<[string, string]>;
  /** The bytes, as files in order (a completed upload keeps its part files, like S3 does not copy). */
  segments: Array<{ file: string; size: number }>;
}

interface PartInfo {
  etag: string;
  size: number;
  file: string;
  lastModified: Date;
}

interface Upload {
  bucket: string;
  key: string;
  uploadId: string;
  initiated: Date;
  contentType: string;
  meta: Record<string, string>;
  sse: string | null;
  kmsKeyId: string | null;
  tags: Array<[string, string]>;
  parts: Map<number, PartInfo>;
}

class S3Error extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

const xmlEscape = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');

const xmlUnescape = (s: string): string =>
  s.replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');

const md5 = (b: Buffer): string => createHash('md5').update(b).digest('hex');

export class S3TestServer {
  readonly requests: RecordedRequest[] = [];
  #opts: Required<Omit<S3TestServerOptions, 'dir'>> & { dir: string | null };
  #dir = '';
  #ownDir = false;
  #server: http.Server | null = null;
  #sockets = new Set<Socket>();
  #buckets = new Set<string>();
  #objects = new Map<string, StoredObject>(); // bucket/key
  #uploads = new Map<string, Upload>();
  /** Completions under way: a repeated Complete (a client retry) gets the same answer. */
  #completing = new Map<string, Promise<{ etag: string; upload: Upload }>>();
  #materialized = new Map<string, string>();
  #faults: Array<Required<Pick<Fault, 'kind'>> & Fault & { left: number }> = [];
  #outage: FaultKind | null = null;
  #stalled = new Set<http.ServerResponse>();
  #closed = false;
  #endpoint = '';

  constructor(opts: S3TestServerOptions = {}) {
    this.#opts = { buckets: opts.buckets ?? ['tessera'], dir: opts.dir ?? null, minPartSize: opts.minPartSize ?? 5 * 1024 * 1024 };
  }

  get endpoint(): string {
    return this.#endpoint;
  }

  async start(): Promise<string> {
    if (this.#opts.dir) {
      this.#dir = this.#opts.dir;
      await fsp.mkdir(this.#dir, { recursive: true });
    } else {
      this.#dir = await fsp.mkdtemp(path.join(os.tmpdir(), 's3server-'));
      this.#ownDir = true;
    }
    for (const b of this.#opts.buckets) this.#buckets.add(b);
    const server = http.createServer((req, res) => {
      this.#handle(req, res).catch((err) => {
        if (!res.headersSent) this.#sendError(res, new S3Error(500, 'InternalError', String(err)));
        else res.destroy();
      });
    });
    server.keepAliveTimeout = 5000;
    server.on('connection', (s) => {
      this.#sockets.add(s);
      s.on('close', () => this.#sockets.delete(s));
    });
    this.#server = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.#endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return this.#endpoint;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const r of this.#stalled) r.destroy();
    this.#stalled.clear();
    for (const s of this.#sockets) s.destroy();
    if (this.#server) await new Promise<void>((resolve) => this.#server!.close(() => resolve()));
    if (this.#ownDir) await fsp.rm(this.#dir, { recursive: true, force: true });
  }

  // ---- fault injection -------------------------------------------------------------------

  /** Inject a fault into the next `times` requests that match. */
  inject(fault: Fault): void {
    this.#faults.push({ ...fault, left: fault.times ?? 1 });
  }

  /** Every request fails this way until `setOutage(null)` (stalled requests are then dropped). */
  setOutage(kind: FaultKind | null): void {
    this.#outage = kind;
    if (kind === null) {
      for (const r of this.#stalled) r.destroy();
      this.#stalled.clear();
    }
  }

  // ---- inspection ------------------------------------------------------------------------

  async getObject(bucket: string, key: string): Promise<Buffer | null> {
    for (;;) {
      const o = this.#objects.get(`${bucket}/${key}`);
      if (!o) return null;
      try {
        return Buffer.concat(await Promise.all(o.segments.map((g) => fsp.readFile(g.file))));
      } catch (err) {
        // Replaced while being read: its old files are gone, read the new version.
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || this.#objects.get(`${bucket}/${key}`) === o) throw err;
      }
    }
  }

  objectInfo(bucket: string, key: string): Omit<StoredObject, 'segments'> | null {
    const o = this.#objects.get(`${bucket}/${key}`);
    if (!o) return null;
    const { segments: _segments, ...rest } = o;
    return rest;
  }

  /** A file holding the object's bytes (for ffprobe and hashing). */
  async objectPath(bucket: string, key: string): Promise<string | null> {
    const o = this.#objects.get(`${bucket}/${key}`);
    if (!o) return null;
    if (o.segments.length === 1) return o.segments[0].file;
    const cached = this.#materialized.get(o.etag);
    if (cached) return cached;
    const file = path.join(this.#dir, 'materialized', `${randomUUID()}.bin`);
    await fsp.mkdir(path.dirname(file), { recursive: true });
    const fh = await fsp.open(file, 'w');
    try {
      // writeAll: one FileHandle.write() may write less than asked, which would fake a corrupt object.
      for (const g of o.segments) await writeAll(fh, await fsp.readFile(g.file));
    } finally {
      await fh.close();
    }
    this.#materialized.set(o.etag, file);
    return file;
  }

  listKeys(bucket: string): string[] {
    return [...this.#objects.keys()].filter((k) => k.startsWith(`${bucket}/`)).map((k) => k.slice(bucket.length + 1)).sort();
  }

  uploadsInProgress(): Array<{ bucket: string; key: string; uploadId: string; parts: number }> {
    return [...this.#uploads.values()].map((u) => ({ bucket: u.bucket, key: u.key, uploadId: u.uploadId, parts: u.parts.size }));
  }

  /** Make an upload look older (for orphan-age tests). */
  ageUpload(uploadId: string, ms: number): void {
    const u = this.#uploads.get(uploadId);
    if (u) u.initiated = new Date(u.initiated.getTime() - ms);
  }

  // ---- request handling ------------------------------------------------------------------

  #classify(method: string, key: string, q: Record<string, string>): S3Op {
    if (!key) {
      if (method === 'GET' && 'uploads' in q) return 'ListMultipartUploads';
      if (method === 'GET' && q['list-type'] === '2') return 'ListObjectsV2';
      if (method === 'POST' && 'delete' in q) return 'DeleteObjects';
      if (method === 'HEAD') return 'HeadBucket';
      return 'Unknown';
    }
    if (method === 'POST' && 'uploads' in q) return 'CreateMultipartUpload';
    if (method === 'PUT' && 'uploadId' in q && 'partNumber' in q) return 'UploadPart';
    if (method === 'POST' && 'uploadId' in q) return 'CompleteMultipartUpload';
    if (method === 'DELETE' && 'uploadId' in q) return 'AbortMultipartUpload';
    if (method === 'GET' && 'uploadId' in q) return 'ListParts';
    if (method === 'GET' && 'tagging' in q) return 'GetObjectTagging';
    if (method === 'PUT' && 'tagging' in q) return 'PutObjectTagging';
    if (method === 'PUT' && !('tagging' in q)) return 'PutObject';
    if (method === 'GET') return 'GetObject';
    if (method === 'HEAD') return 'HeadObject';
    if (method === 'DELETE') return 'DeleteObject';
    return 'Unknown';
  }

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const query: Record<string, string> = {};
    for (const [k, v] of url.searchParams) query[k] = v;
    const parts = url.pathname.split('/');
    const bucket = decodeURIComponent(parts[1] ?? '');
    const key = parts.slice(2).map(decodeURIComponent).join('/');
    const method = req.method ?? 'GET';
    const rec: RecordedRequest = { op: this.#classify(method, key, query), method, bucket, key, query, headers: req.headers, at: Date.now() };
    this.requests.push(rec);

    const fault = this.#takeFault(rec);
    if (fault) {
      rec.fault = fault;
      if (fault === 'reset') {
        // Read a little of the body first, like a connection dropped mid-upload.
        req.once('data', () => req.socket.destroy());
        req.once('end', () => req.socket.destroy());
        setTimeout(() => req.socket.destroy(), 20);
        return;
      }
      if (fault === 'stall') {
        req.resume();
        this.#stalled.add(res);
        res.on('close', () => this.#stalled.delete(res));
        return;
      }
      await this.#readBody(req).catch(() => undefined);
      const err = fault === 'slowdown'
        ? new S3Error(503, 'SlowDown', 'Please reduce your request rate.')
        : new S3Error(500, 'InternalError', 'We encountered an internal error. Please try again.');
      rec.status = err.status;
      this.#sendError(res, err);
      return;
    }

    try {
      if (!req.headers.authorization && !query['X-Amz-Signature']) throw new S3Error(403, 'AccessDenied', 'Anonymous access denied');
      if (!this.#buckets.has(bucket)) throw new S3Error(404, 'NoSuchBucket', `The specified bucket does not exist: ${bucket}`);
      const body = method === 'PUT' || method === 'POST' ? await this.#readBody(req) : (req.resume(), Buffer.alloc(0));
      rec.bodyBytes = body.length;
      await this.#dispatch(rec, req, res, body);
      rec.status = res.statusCode;
    } catch (err) {
      const e = err instanceof S3Error ? err : new S3Error(500, 'InternalError', String(err));
      rec.status = e.status;
      this.#sendError(res, e, method === 'HEAD');
    }
  }

  #takeFault(rec: RecordedRequest): FaultKind | null {
    if (this.#outage) return this.#outage;
    for (const f of this.#faults) {
      if (f.left > 0 && (!f.match || f.match(rec))) {
        f.left--;
        return f.kind;
      }
    }
    return null;
  }

  #readBody(req: http.IncomingMessage): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        let body: Buffer = Buffer.concat(chunks);
        if (/aws-chunked/.test(String(req.headers['content-encoding'] ?? ''))) body = decodeAwsChunked(body);
        resolve(body);
      });
      req.on('error', reject);
    });
  }

  async #dispatch(rec: RecordedRequest, req: http.IncomingMessage, res: http.ServerResponse, body: Buffer): Promise<void> {
    const { bucket, key, query, headers } = rec;
    switch (rec.op) {
      case 'HeadBucket':
        res.writeHead(200).end();
        return;
      case 'CreateMultipartUpload': {
        const attrs = this.#creationAttrs(headers);
        const uploadId = randomUUID().replace(/-/g, '');
        this.#uploads.set(uploadId, { bucket, key, uploadId, initiated: new Date(), parts: new Map(), ...attrs });
        await fsp.mkdir(path.join(this.#dir, 'uploads', uploadId), { recursive: true });
        res.writeHead(200, { 'content-type': 'application/xml', ...this.#sseHeaders(attrs) });
        res.end(`<?xml version="1.0" encoding="UTF-8"?>\n<InitiateMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>${xmlEscape(bucket)}</Bucket><Key>${xmlEscape(key)}</Key><UploadId>${uploadId}</UploadId></InitiateMultipartUploadResult>`);
        return;
      }
      case 'UploadPart': {
        const u = this.#upload(query.uploadId, bucket, key);
        const n = Number(query.partNumber);
        if (!Number.isInteger(n) || n < 1 || n > 10000) throw new S3Error(400, 'InvalidArgument', 'Part number must be an integer between 1 and 10000, inclusive');
        const declared = headers['content-length'] !== undefined ? Number(headers['content-length']) : null;
        if (declared !== null && !/aws-chunked/.test(String(headers['content-encoding'] ?? '')) && declared !== body.length) {
          throw new S3Error(400, 'IncompleteBody', 'You did not provide the number of bytes specified by the Content-Length HTTP header');
        }
        // Atomic, as on S3: a retried UploadPart racing the original never mixes two writes.
        const file = path.join(this.#dir, 'uploads', u.uploadId, `${n}.part`);
        const tmp = `${file}.${randomUUID()}.tmp`;
        await fsp.writeFile(tmp, body);
        await fsp.rename(tmp, file);
        const etag = `"${md5(body)}"`;
        u.parts.set(n, { etag, size: body.length, file, lastModified: new Date() });
        res.writeHead(200, { etag, ...this.#sseHeaders(u) }).end();
        return;
      }
      case 'CompleteMultipartUpload': {
        const running = this.#completing.get(query.uploadId);
        const { etag, upload: u } = running ? await running : await this.#complete(this.#upload(query.uploadId, bucket, key), body);
        res.writeHead(200, { 'content-type': 'application/xml', ...this.#sseHeaders(u) });
        res.end(`<?xml version="1.0" encoding="UTF-8"?>\n<CompleteMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Location>${this.#endpoint}/${xmlEscape(bucket)}/${xmlEscape(key)}</Location><Bucket>${xmlEscape(bucket)}</Bucket><Key>${xmlEscape(key)}</Key><ETag>${xmlEscape(etag)}</ETag></CompleteMultipartUploadResult>`);
        return;
      }
      case 'AbortMultipartUpload': {
        const u = this.#upload(query.uploadId, bucket, key);
        this.#uploads.delete(u.uploadId);
        await fsp.rm(path.join(this.#dir, 'uploads', u.uploadId), { recursive: true, force: true });
        res.writeHead(204).end();
        return;
      }
      case 'ListMultipartUploads': {
        const prefix = query.prefix ?? '';
        const ups = [...this.#uploads.values()]
          .filter((u) => u.bucket === bucket && u.key.startsWith(prefix))
          .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.initiated.getTime() - b.initiated.getTime()));
        const items = ups.map((u) => `<Upload><Key>${xmlEscape(u.key)}</Key><UploadId>${u.uploadId}</UploadId><StorageClass>STANDARD</StorageClass><Initiated>${u.initiated.toISOString()}</Initiated></Upload>`).join('');
        res.writeHead(200, { 'content-type': 'application/xml' });
        res.end(`<?xml version="1.0" encoding="UTF-8"?>\n<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>${xmlEscape(bucket)}</Bucket><Prefix>${xmlEscape(prefix)}</Prefix><MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated>${items}</ListMultipartUploadsResult>`);
        return;
      }
      case 'ListParts': {
        const u = this.#upload(query.uploadId, bucket, key);
        const marker = Number(query['part-number-marker'] ?? 0);
        const max = Math.min(Number(query['max-parts'] ?? 1000), 1000);
        const all = [...u.parts.entries()].sort((a, b) => a[0] - b[0]).filter(([n]) => n > marker);
        const page = all.slice(0, max);
        const truncated = all.length > page.length;
        const items = page.map(([n, p]) => `<Part><PartNumber>${n}</PartNumber><LastModified>${p.lastModified.toISOString()}</LastModified><ETag>${xmlEscape(p.etag)}</ETag><Size>${p.size}</Size></Part>`).join('');
        res.writeHead(200, { 'content-type': 'application/xml' });
        res.end(`<?xml version="1.0" encoding="UTF-8"?>\n<ListPartsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>${xmlEscape(bucket)}</Bucket><Key>${xmlEscape(key)}</Key><UploadId>${u.uploadId}</UploadId><PartNumberMarker>${marker}</PartNumberMarker>${truncated ? `<NextPartNumberMarker>${page[page.length - 1][0]}</NextPartNumberMarker>` : ''}<MaxParts>${max}</MaxParts><IsTruncated>${truncated}</IsTruncated>${items}</ListPartsResult>`);
        return;
      }
      case 'PutObject': {
        if (headers['x-amz-copy-source']) throw new S3Error(501, 'NotImplemented', 'CopyObject is not implemented by the test server');
        const attrs = this.#creationAttrs(headers);
        const file = path.join(this.#dir, 'objects', `${randomUUID()}.bin`);
        await fsp.mkdir(path.dirname(file), { recursive: true });
        await fsp.writeFile(file, body);
        const etag = `"${md5(body)}"`;
        await this.#replaceObject(bucket, key, { size: body.length, etag, lastModified: new Date(), segments: [{ file, size: body.length }], ...attrs });
        res.writeHead(200, { etag, ...this.#sseHeaders(attrs) }).end();
        return;
      }
      case 'GetObject':
      case 'HeadObject': {
        const o = this.#objects.get(`${bucket}/${key}`);
        if (!o) throw new S3Error(404, 'NoSuchKey', 'The specified key does not exist.');
        const base: http.OutgoingHttpHeaders = {
          etag: o.etag,
          'last-modified': o.lastModified.toUTCString(),
          'content-type': o.contentType,
          'accept-ranges': 'bytes',
          ...this.#sseHeaders(o),
          ...Object.fromEntries(Object.entries(o.meta).map(([k, v]) => [`x-amz-meta-${k}`, v])),
        };
        if (o.tags.length) base['x-amz-tagging-count'] = String(o.tags.length);
        const range = req.headers.range;
        let start = 0;
        let end = o.size - 1;
        let status = 200;
        if (range) {
          const m = /^bytes=(\d*)-(\d*)$/.exec(range.trim());
          if (m && (m[1] !== '' || m[2] !== '')) {
            if (m[1] === '') {
              start = Math.max(0, o.size - Number(m[2]));
            } else {
              start = Number(m[1]);
              end = m[2] === '' ? o.size - 1 : Math.min(Number(m[2]), o.size - 1);
            }
            if (start >= o.size || start > end) {
              res.setHeader('content-range', `bytes */${o.size}`);
              throw new S3Error(416, 'InvalidRange', 'The requested range is not satisfiable');
            }
            status = 206;
            base['content-range'] = `bytes ${start}-${end}/${o.size}`;
          }
        }
        const length = o.size === 0 ? 0 : end - start + 1;
        res.writeHead(status, { ...base, 'content-length': String(length) });
        if (rec.op === 'HeadObject' || length === 0) {
          res.end();
          return;
        }
        const segs = o.segments;
        async function* bytes(): AsyncGenerator<Buffer> {
          let base = 0;
          for (const g of segs) {
            const a = Math.max(start, base);
            const b = Math.min(end, base + g.size - 1);
            if (a <= b) for await (const c of createReadStream(g.file, { start: a - base, end: b - base })) yield c as Buffer;
            base += g.size;
          }
        }
        await new Promise<void>((resolve) => {
          const s = Readable.from(bytes());
          s.on('error', () => {
            res.destroy();
            resolve();
          });
          res.on('close', () => {
            s.destroy();
            resolve();
          });
          s.pipe(res);
        });
        return;
      }
      case 'GetObjectTagging': {
        const o = this.#objects.get(`${bucket}/${key}`);
        if (!o) throw new S3Error(404, 'NoSuchKey', 'The specified key does not exist.');
        const tags = o.tags.map(([k, v]) => `<Tag><Key>${xmlEscape(k)}</Key><Value>${xmlEscape(v)}</Value></Tag>`).join('');
        res.writeHead(200, { 'content-type': 'application/xml' });
        res.end(`<?xml version="1.0" encoding="UTF-8"?>\n<Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet>${tags}</TagSet></Tagging>`);
        return;
      }
      case 'PutObjectTagging': {
        const o = this.#objects.get(`${bucket}/${key}`);
        if (!o) throw new S3Error(404, 'NoSuchKey', 'The specified key does not exist.');
        const xml = body.toString('utf8');
        o.tags = [...xml.matchAll(/<Tag><Key>([^<]*)<\/Key><Value>([^<]*)<\/Value><\/Tag>/g)].map((m) => [m[1], m[2]] as [string, string]);
        res.writeHead(200);
        res.end();
        return;
      }
      case 'DeleteObject': {
        await this.#deleteObject(bucket, key);
        res.writeHead(204).end();
        return;
      }
      case 'DeleteObjects': {
        const keys = [...body.toString('utf8').matchAll(/<Key>([\s\S]*?)<\/Key>/g)].map((m) => xmlUnescape(m[1]));
        for (const k of keys) await this.#deleteObject(bucket, k);
        res.writeHead(200, { 'content-type': 'application/xml' });
        res.end(`<?xml version="1.0" encoding="UTF-8"?>\n<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${keys.map((k) => `<Deleted><Key>${xmlEscape(k)}</Key></Deleted>`).join('')}</DeleteResult>`);
        return;
      }
      case 'ListObjectsV2': {
        const prefix = query.prefix ?? '';
        const max = Math.min(Number(query['max-keys'] ?? 1000), 1000);
        const after = query['continuation-token'] ?? query['start-after'] ?? '';
        const delimiter = query.delimiter ?? '';
        const all = this.listKeys(bucket).filter((k) => k.startsWith(prefix) && k > after);
        const contents: string[] = [];
        const prefixes = new Set<string>();
        let last = '';
        let truncated = false;
        for (const k of all) {
          if (contents.length + prefixes.size >= max) {
            truncated = true;
            break;
          }
          last = k;
          if (delimiter) {
            const i = k.indexOf(delimiter, prefix.length);
            if (i >= 0) {
              prefixes.add(k.slice(0, i + delimiter.length));
              continue;
            }
          }
          const o = this.#objects.get(`${bucket}/${k}`)!;
          contents.push(`<Contents><Key>${xmlEscape(k)}</Key><LastModified>${o.lastModified.toISOString()}</LastModified><ETag>${xmlEscape(o.etag)}</ETag><Size>${o.size}</Size><StorageClass>STANDARD</StorageClass></Contents>`);
        }
        const cps = [...prefixes].map((p) => `<CommonPrefixes><Prefix>${xmlEscape(p)}</Prefix></CommonPrefixes>`).join('');
        res.writeHead(200, { 'content-type': 'application/xml' });
        res.end(`<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>${xmlEscape(bucket)}</Name><Prefix>${xmlEscape(prefix)}</Prefix><KeyCount>${contents.length + prefixes.size}</KeyCount><MaxKeys>${max}</MaxKeys><IsTruncated>${truncated}</IsTruncated>${truncated ? `<NextContinuationToken>${xmlEscape(last)}</NextContinuationToken>` : ''}${contents.join('')}${cps}</ListBucketResult>`);
        return;
      }
      default:
        throw new S3Error(501, 'NotImplemented', `${rec.method} ${req.url} is not implemented by the test server`);
    }
  }

  #complete(u: Upload, body: Buffer): Promise<{ etag: string; upload: Upload }> {
    const xml = body.toString('utf8');
    const listed = [...xml.matchAll(/<Part>([\s\S]*?)<\/Part>/g)].map((m) => ({
      n: Number(/<PartNumber>(\d+)<\/PartNumber>/.exec(m[1])?.[1]),
      etag: xmlUnescape(/<ETag>([\s\S]*?)<\/ETag>/.exec(m[1])?.[1] ?? ''),
    }));
    if (!listed.length) throw new S3Error(400, 'MalformedXML', 'The XML you provided was not well-formed or did not validate against our published schema');
    for (let i = 1; i < listed.length; i++) {
      if (!(listed[i].n > listed[i - 1].n)) throw new S3Error(400, 'InvalidPartOrder', 'The list of parts was not in ascending order. Parts must be ordered by part number.');
    }
    const chosen: PartInfo[] = [];
    for (const [i, p] of listed.entries()) {
      const stored = u.parts.get(p.n);
      const norm = (e: string): string => e.replace(/"/g, '');
      if (!stored || norm(stored.etag) !== norm(p.etag)) throw new S3Error(400, 'InvalidPart', `One or more of the specified parts could not be found (part ${p.n}).`);
      if (i < listed.length - 1 && stored.size < this.#opts.minPartSize) {
        throw new S3Error(400, 'EntityTooSmall', `Your proposed upload is smaller than the minimum allowed size (part ${p.n}: ${stored.size} bytes)`);
      }
      chosen.push(stored);
    }
    const work = (async () => {
      // Keep the part files as the object's bytes (no copy): completion costs O(parts), as on S3.
      const objDir = path.join(this.#dir, 'objects', randomUUID());
      await fsp.mkdir(objDir, { recursive: true });
      const segments: Array<{ file: string; size: number }> = [];
      for (const p of chosen) {
        const file = path.join(objDir, path.basename(p.file));
        await fsp.rename(p.file, file);
        segments.push({ file, size: p.size });
      }
      const etag = `"${md5(Buffer.concat(chosen.map((p) => Buffer.from(p.etag.replace(/"/g, ''), 'hex'))))}-${chosen.length}"`;
      await this.#replaceObject(u.bucket, u.key, {
        size: chosen.reduce((a, p) => a + p.size, 0), etag, lastModified: new Date(), contentType: u.contentType, meta: u.meta, sse: u.sse, kmsKeyId: u.kmsKeyId, tags: u.tags, segments,
      });
      this.#uploads.delete(u.uploadId);
      await fsp.rm(path.join(this.#dir, 'uploads', u.uploadId), { recursive: true, force: true });
      return { etag, upload: u };
    })();
    this.#completing.set(u.uploadId, work);
    return work;
  }

  #upload(uploadId: string, bucket: string, key: string): Upload {
    const u = this.#uploads.get(uploadId);
    if (!u || u.bucket !== bucket || u.key !== key) {
      throw new S3Error(404, 'NoSuchUpload', 'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.');
    }
    return u;
  }

  #creationAttrs(h: http.IncomingHttpHeaders): Pick<StoredObject, 'contentType' | 'meta' | 'sse' | 'kmsKeyId' | 'tags'> {
    const meta: Record<string, string> = {};
    for (const [k, v] of Object.entries(h)) if (k.startsWith('x-amz-meta-') && typeof v === 'string') meta[k.slice(11)] = v;
    const sse = (h['x-amz-server-side-encryption'] as string | undefined) ?? null;
    if (sse !== null && sse !== 'AES256' && sse !== 'aws:kms') throw new S3Error(400, 'InvalidArgument', `Invalid server-side encryption: ${sse}`);
    const kmsKeyId = (h['x-amz-server-side-encryption-aws-kms-key-id'] as string | undefined) ?? null;
    if (kmsKeyId && sse !== 'aws:kms') throw new S3Error(400, 'InvalidArgument', 'KMS key id given without aws:kms encryption');
    const tagging = (h['x-amz-tagging'] as string | undefined) ?? '';
    const tags = tagging ? [...new URLSearchParams(tagging)].map(([k, v]) => [k, v] as [string, string]) : [];
    return { contentType: (h['content-type'] as string | undefined) ?? 'binary/octet-stream', meta, sse, kmsKeyId, tags };
  }

  #sseHeaders(a: { sse: string | null; kmsKeyId: string | null }): Record<string, string> {
    const h: Record<string, string> = {};
    if (a.sse) h['x-amz-server-side-encryption'] = a.sse;
    if (a.sse === 'aws:kms') h['x-amz-server-side-encryption-aws-kms-key-id'] = a.kmsKeyId ?? 'arn:aws:kms:us-east-1:000000000000:key/aws/s3';
    return h;
  }

  /**
   * Puts a new version in place at once, as S3 does: a reader sees the old object or the new one,
   * never no object (deleting first left a window in which a manifest being rewritten was missing).
   */
  async #replaceObject(bucket: string, key: string, o: StoredObject): Promise<void> {
    const old = this.#objects.get(`${bucket}/${key}`);
    this.#objects.set(`${bucket}/${key}`, o);
    if (old) for (const g of old.segments) await fsp.rm(g.file, { force: true });
  }

  async #deleteObject(bucket: string, key: string): Promise<void> {
    const o = this.#objects.get(`${bucket}/${key}`);
    if (!o) return;
    this.#objects.delete(`${bucket}/${key}`);
    for (const g of o.segments) await fsp.rm(g.file, { force: true });
  }

  #sendError(res: http.ServerResponse, e: S3Error, head = false): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${e.code}</Code><Message>${xmlEscape(e.message)}</Message><RequestId>${randomUUID()}</RequestId></Error>`;
    res.writeHead(e.status, { 'content-type': 'application/xml', ...(head ? {} : { 'content-length': Buffer.byteLength(body) }) });
    res.end(head ? undefined : body);
  }
}

/** Decode an `aws-chunked` body (SigV4 streaming or unsigned with trailing checksums). */
function decodeAwsChunked(b: Buffer): Buffer {
  const out: Buffer[] = [];
  let i = 0;
  for (;;) {
    const eol = b.indexOf('\r\n', i);
    if (eol < 0) break;
    const size = parseInt(b.toString('latin1', i, eol).split(';')[0], 16);
    if (!Number.isFinite(size) || size === 0) break;
    out.push(b.subarray(eol + 2, eol + 2 + size));
    i = eol + 2 + size + 2;
  }
  return Buffer.concat(out);
}
