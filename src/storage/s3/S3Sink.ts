import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  HeadObjectCommand,
  PutObjectCommand,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { EventEmitter } from 'node:events';
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Config } from '../../config';
import { TesseraError, toTesseraError } from '../../errors';
import type { Logger } from '../../logger';
import type { RecordingLocation } from '../../media/types';
import type { Mp4Segment, Sink, SinkResult } from '../Sink';
import type { Spool } from '../Spool';
import { fragmentEndMs, parseInit, type InitInfo } from './fmp4';
import { encryption, sendTagged, type StoreFeatures } from './capabilities';
import { partTargetBytes } from './parts';
import { retryOptions, withRetry, type RetryOptions } from './withRetry';
import { writeAll } from '../writeAll';

export type S3Settings = Config['s3'] & { bucket: string };

/** What a sink keeps in its spool directory so that recover() can finish its upload after a crash. */
export interface SpoolState {
  version: 1;
  recordingId: string;
  roomId: string;
  bucket: string;
  key: string;
  manifestKey: string;
  uploadId: string | null;
  startedAt: string;
  pid: number;
  host: string;
  instanceId: string;
}

export const STATE_FILE = 'state.json';
export const FINAL_FILE = 'final.json';
export const partFileName = (n: number): string => `part-${String(n).padStart(5, '0')}.bin`;
export const PART_FILE_RE = /^part-(\d+)\.bin$/;

interface QueuedPart {
  n: number;
  file: string;
  bytes: number;
  endMs: number;
}

type State = 'new' | 'opening' | 'open' | 'finishing' | 'finished' | 'aborted' | 'failed';

export interface S3SinkEvents {
  close: [];
}

/**
 * One recording's live multipart upload. Fragments are appended to a part file in the local spool
 * (write() resolves when the bytes are on local disk); when the part file reaches its target size
 * (at a fragment boundary, so every part is whole fragments) it is queued, and one uploader loop
 * sends queued parts in order, retrying with backoff for as long as the recording lasts. So an S3
 * outage only grows the spool (bounded by spoolMaxBytes), and stop only has to send the last part
 * and complete. Memory: one part body (the part being uploaded) + the fragment being written.
 *
 * Manifest: a checkpoint `<key>.json` with status "recording" and an `upload` block is written at
 * open and every checkpointMs; finish() replaces it with the pipeline's manifest.
 */
export class S3Sink extends EventEmitter<S3SinkEvents> implements Sink {
  readonly location: RecordingLocation;
  readonly recordingId: string;
  readonly roomId: string;
  readonly manifestKey: string;
  #client: S3Client;
  #cfg: S3Settings;
  #spool: Spool;
  #features: StoreFeatures;
  /** The store's highest part number, as known when the upload opened. */
  #maxParts: number;
  #instanceId: string;
  #log: Logger;
  #dir: string;
  #state: State = 'new';
  #closed = false;
  #closeAc = new AbortController();
  #hurryAc = new AbortController();
  #uploadId: string | null = null;
  #startedAt = new Date().toISOString();
  #partNumber = 1;
  #cur: FileHandle | null = null;
  #curBytes = 0;
  #queue: QueuedPart[] = [];
  #done: Array<{ PartNumber: number; ETag: string; size: number }> = [];
  #bytesWritten = 0;
  #bytesUploaded = 0;
  #uploadedEndMs = 0;
  #lastEndMs = 0;
  #init: InitInfo | null = null;
  #uploader: Promise<void> | null = null;
  /** finish()/abort() has queued the last part: the uploader may stop when the queue is empty. */
  #sealedAll = false;
  #uploadError: Error | null = null;
  #wake: (() => void) | null = null;
  #deadline = Infinity;
  #manifest: Record<string, unknown> | null = null;
  #checkpointTimer: NodeJS.Timeout | null = null;
  #checkpointing = false;
  #result: SinkResult | null = null;
  /** ms from finish() to the object being complete (for metrics and tests). */
  finishMs: number | null = null;

  constructor(o: {
    client: S3Client;
    cfg: S3Settings;
    spool: Spool;
    features: StoreFeatures;
    instanceId: string;
    logger: Logger;
    recordingId: string;
    roomId: string;
    key: string;
    manifestKey: string;
  }) {
    super();
    this.#client = o.client;
    this.#cfg = o.cfg;
    this.#spool = o.spool;
    this.#features = o.features;
    this.#maxParts = o.features.caps.maxParts;
    this.#instanceId = o.instanceId;
    this.recordingId = o.recordingId;
    this.roomId = o.roomId;
    this.manifestKey = o.manifestKey;
    this.location = { kind: 's3', bucket: o.cfg.bucket, key: o.key };
    this.#dir = o.spool.recordingDir(o.recordingId);
    this.#log = o.logger.child({ recordingId: o.recordingId, roomId: o.roomId, component: 's3sink' });
  }

  get uploadId(): string | null {
    return this.#uploadId;
  }

  /** Progress, for logs, tests and metrics. */
  get stats(): { bytesWritten: number; bytesUploaded: number; partsUploaded: number; partsQueued: number; spoolBytes: number } {
    return {
      bytesWritten: this.#bytesWritten,
      bytesUploaded: this.#bytesUploaded,
      partsUploaded: this.#done.length,
      partsQueued: this.#queue.length,
      spoolBytes: this.#bytesWritten - this.#bytesUploaded,
    };
  }

  /**
   * Optional: the pipeline's current Recording (participants, layout). The checkpoint manifest is
   * built from it, so a recording recovered after a crash keeps them.
   */
  updateManifest(manifest: object): void {
    this.#manifest = { ...(manifest as Record<string, unknown>) };
  }

  async open(): Promise<void> {
    if (this.#state !== 'new') throw new TesseraError('REC_ERR_SINK', `open() in state ${this.#state}`);
    this.#state = 'opening';
    await fsp.mkdir(this.#dir, { recursive: true });
    const deadline = Date.now() + this.#cfg.openTimeoutMs;
    this.#maxParts = this.#features.caps.maxParts;
    const out = await withRetry(
      (abortSignal) =>
        sendTagged(this.#features, retentionTags(this.#cfg.retentionClass), (Tagging) =>
          this.#client.send(
            new CreateMultipartUploadCommand({
              Bucket: this.#cfg.bucket,
              Key: this.location.key,
              ContentType: 'video/mp4',
              Metadata: { 'recording-id': this.recordingId, 'room-id': this.roomId, 'started-at': this.#startedAt, 'retention-class': this.#cfg.retentionClass },
              Tagging,
              ...encryption(this.#cfg),
            }),
            { abortSignal },
          ),
        ),
      this.#retry('CreateMultipartUpload', () => deadline),
    ).catch((err) => {
      this.#state = 'failed';
      void fsp.rm(this.#dir, { recursive: true, force: true });
      throw toTesseraError(err, 'REC_ERR_UPLOAD');
    });
    if (!out.UploadId) throw new TesseraError('REC_ERR_UPLOAD', 'CreateMultipartUpload returned no UploadId');
    this.#uploadId = out.UploadId;
    const state: SpoolState = {
      version: 1,
      recordingId: this.recordingId,
      roomId: this.roomId,
      bucket: this.#cfg.bucket,
      key: this.location.key,
      manifestKey: this.manifestKey,
      uploadId: this.#uploadId,
      startedAt: this.#startedAt,
      pid: process.pid,
      host: os.hostname(),
      instanceId: this.#instanceId,
    };
    await fsp.writeFile(path.join(this.#dir, STATE_FILE), JSON.stringify(state));
    this.#state = 'open';
    this.#uploader = this.#runUploader().catch((err: Error) => {
      this.#uploadError = err;
      this.#log.error({ err: err.message }, 'part upload failed for good');
    });
    await this.#checkpoint(deadline);
    this.#checkpointTimer = setInterval(() => void this.#checkpoint(Date.now() + this.#cfg.checkpointMs / 2), this.#cfg.checkpointMs);
    this.#checkpointTimer.unref();
    this.#log.info({ key: this.location.key, uploadId: this.#uploadId }, 'multipart upload started');
  }

  async write(segment: Mp4Segment): Promise<void> {
    if (this.#state !== 'open') throw new TesseraError('REC_ERR_SINK', `write() in state ${this.#state}`);
    if (this.#uploadError) throw toTesseraError(this.#uploadError, 'REC_ERR_UPLOAD');
    const data = segment.data;
    if (!this.#spool.reserve(data.length)) {
      throw new TesseraError('REC_ERR_UPLOAD', `upload spool full (${this.#spool.usedBytes} of ${this.#spool.maxBytes} bytes waiting for S3)`);
    }
    if (segment.kind === 'init') {
      this.#init = parseInit(data);
    } else if (this.#init) {
      const end = fragmentEndMs(data, this.#init);
      if (end !== null) this.#lastEndMs = end;
    }
    if (!this.#cur) this.#cur = await fsp.open(path.join(this.#dir, partFileName(this.#partNumber)), 'a');
    await writeAll(this.#cur, data);
    this.#curBytes += data.length;
    this.#bytesWritten += data.length;
    // The store's last part number (10,000 on AWS, 1000 on Swift): from there on the last part only grows (past capacityBytes()).
    if (this.#partNumber < this.#maxParts && this.#curBytes >= partTargetBytes(this.#partNumber, this.#cfg.partSizeBytes, this.#maxParts)) await this.#seal();
  }

  async finish(manifest: object): Promise<SinkResult> {
    if (this.#result) return this.#result;
    if (this.#state !== 'open') throw new TesseraError('REC_ERR_SINK', `finish() in state ${this.#state}`);
    return this.#complete(manifest, 'finishing');
  }

  async abort(reason: Error, manifest: object): Promise<void> {
    try {
      this.#log.warn({ reason: reason.message, state: this.#state }, 'sink abort');
      if (this.#state === 'open') {
        // Keep what can be kept: everything written is whole fragments, so complete it.
        await this.#complete(manifest, 'aborted');
        return;
      }
      if (this.#state === 'finishing') {
        // finish() is under way and the pipeline gave up on it: leave the rest to recover().
        await fsp.writeFile(path.join(this.#dir, FINAL_FILE), JSON.stringify(manifest)).catch(() => undefined);
      }
    } catch (err) {
      this.#log.error({ err: (err as Error).message }, 'abort could not complete the upload; recover() will');
    } finally {
      this.close();
    }
  }

  /** Idempotent, never throws. Stops timers and cancels requests; the spool stays for recover(). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#checkpointTimer) clearInterval(this.#checkpointTimer);
    this.#checkpointTimer = null;
    this.#closeAc.abort();
    this.#kick();
    const fh = this.#cur;
    this.#cur = null;
    void fh?.close().catch(() => undefined);
    this.emit('close');
  }

  // ---- internals -------------------------------------------------------------------------

  async #complete(manifest: object, mode: 'finishing' | 'aborted'): Promise<SinkResult> {
    const t0 = Date.now();
    this.#state = mode === 'finishing' ? 'finishing' : 'aborted';
    this.#deadline = t0 + this.#cfg.finishTimeoutMs;
    if (this.#checkpointTimer) clearInterval(this.#checkpointTimer);
    this.#checkpointTimer = null;
    const deadline = (): number => this.#deadline;
    try {
      await fsp.writeFile(path.join(this.#dir, FINAL_FILE), JSON.stringify(manifest));
      if (this.#curBytes > 0) await this.#seal();
      this.#sealedAll = true;
      // Interrupt a backoff wait so the tail goes now, not after the current wait.
      this.#hurryAc.abort();
      this.#hurryAc = new AbortController();
      this.#kick();
      await this.#uploader;
      if (this.#uploadError) throw this.#uploadError;
      const parts = [...this.#done].sort((a, b) => a.PartNumber - b.PartNumber);
      if (parts.length === 0) {
        await withRetry(
          (abortSignal) => this.#client.send(new AbortMultipartUploadCommand({ Bucket: this.#cfg.bucket, Key: this.location.key, UploadId: this.#uploadId! }), { abortSignal }),
          this.#retry('AbortMultipartUpload', deadline),
        ).catch(() => undefined);
      } else {
        await withRetry(async (abortSignal) => {
          try {
            await this.#client.send(
              new CompleteMultipartUploadCommand({
                Bucket: this.#cfg.bucket,
                Key: this.location.key,
                UploadId: this.#uploadId!,
                MultipartUpload: { Parts: parts.map((p) => ({ PartNumber: p.PartNumber, ETag: p.ETag })) },
              }),
              { abortSignal },
            );
          } catch (err) {
            // A retry after a response that got lost: the object is there already.
            if ((err as Error).name === 'NoSuchUpload' && (await this.#objectSize(abortSignal)) === this.#bytesUploaded) return;
            throw err;
          }
        }, this.#retry('CompleteMultipartUpload', deadline));
      }
      this.finishMs = Date.now() - t0;
      const { upload: _upload, ...given } = manifest as Record<string, unknown>;
      const body = { ...given, bytes: this.#bytesUploaded, location: this.location, retentionClass: this.#cfg.retentionClass };
      await this.#putManifest(body, deadline);
      this.#state = mode === 'finishing' ? 'finished' : 'aborted';
      const fh = this.#cur;
      this.#cur = null;
      await fh?.close().catch(() => undefined);
      await fsp.rm(this.#dir, { recursive: true, force: true });
      this.#log.info({ bytes: this.#bytesUploaded, parts: parts.length, completeMs: this.finishMs, totalMs: Date.now() - t0 }, 'upload complete');
      this.#result = { bytes: this.#bytesUploaded, location: this.location };
      return this.#result;
    } catch (err) {
      this.#state = 'failed';
      this.#log.error({ err: (err as Error).message }, 'could not complete the upload; the spool is kept for recover()');
      throw toTesseraError(err, 'REC_ERR_UPLOAD');
    } finally {
      this.close();
    }
  }

  async #objectSize(abortSignal: AbortSignal): Promise<number | null> {
    try {
      const h = await this.#client.send(new HeadObjectCommand({ Bucket: this.#cfg.bucket, Key: this.location.key }), { abortSignal });
      return h.ContentLength ?? null;
    } catch {
      return null;
    }
  }

  async #seal(): Promise<void> {
    const file = path.join(this.#dir, partFileName(this.#partNumber));
    const fh = this.#cur;
    this.#cur = null;
    await fh?.close();
    this.#queue.push({ n: this.#partNumber, file, bytes: this.#curBytes, endMs: this.#lastEndMs });
    this.#partNumber++;
    this.#curBytes = 0;
    this.#kick();
  }

  #kick(): void {
    const w = this.#wake;
    this.#wake = null;
    w?.();
  }

  async #runUploader(): Promise<void> {
    for (;;) {
      if (this.#closed) return;
      const next = this.#queue[0];
      if (!next) {
        // Done only once finish/abort has sealed the last part. Not on `state !== 'open'`: that
        // is set before the seal (with an await in between), and an uploader that finished the
        // previous part in that gap used to exit, so Complete went out without the last part —
        // the recording silently lost its final seconds (caught by the 30-minute byte check).
        if (this.#sealedAll) return;
        await new Promise<void>((resolve) => (this.#wake = resolve));
        continue;
      }
      const body = await fsp.readFile(next.file);
      const out = await withRetry(
        (abortSignal) =>
          this.#client.send(
            new UploadPartCommand({
              Bucket: this.#cfg.bucket,
              Key: this.location.key,
              UploadId: this.#uploadId!,
              PartNumber: next.n,
              Body: body,
              ContentLength: body.length,
            }),
            { abortSignal },
          ),
        this.#retry(`UploadPart ${next.n}`, () => this.#deadline),
      );
      if (!out.ETag) throw new TesseraError('REC_ERR_UPLOAD', `UploadPart ${next.n} returned no ETag`);
      this.#done.push({ PartNumber: next.n, ETag: out.ETag, size: body.length });
      this.#queue.shift();
      this.#bytesUploaded += body.length;
      this.#uploadedEndMs = next.endMs;
      this.#spool.release(next.bytes);
      await fsp.rm(next.file, { force: true });
      this.#log.debug({ part: next.n, bytes: body.length, queued: this.#queue.length }, 'part uploaded');
    }
  }

  async #checkpoint(deadline: number): Promise<void> {
    if (this.#checkpointing || this.#state !== 'open') return;
    this.#checkpointing = true;
    try {
      const base = this.#manifest ?? { id: this.recordingId, roomId: this.roomId, startedAt: this.#startedAt, layout: null, participants: [] };
      await this.#putManifest(
        {
          ...base,
          id: this.recordingId,
          roomId: this.roomId,
          status: 'recording',
          startedAt: (base.startedAt as string | undefined) ?? this.#startedAt,
          location: this.location,
          retentionClass: this.#cfg.retentionClass,
          bytes: this.#bytesUploaded,
          durationMs: this.#uploadedEndMs,
          upload: { uploadId: this.#uploadId, checkpointAt: new Date().toISOString(), parts: this.#done.length, pid: process.pid, host: os.hostname() },
        },
        () => deadline,
      );
    } catch (err) {
      this.#log.warn({ err: (err as Error).message }, 'checkpoint manifest not written');
    } finally {
      this.#checkpointing = false;
    }
  }

  async #putManifest(body: object, deadline: () => number): Promise<void> {
    const json = JSON.stringify(body, null, 2);
    await withRetry(
      (abortSignal) => putManifest(this.#client, this.#features, this.#cfg, { bucket: this.#cfg.bucket, key: this.manifestKey, json }, abortSignal),
      this.#retry('PutObject manifest', deadline),
    );
  }

  #retry(op: string, deadline: () => number): RetryOptions {
    return retryOptions(this.#cfg, { op, deadline, signal: this.#closeAc.signal, wakeSignal: () => this.#hurryAc.signal, logger: this.#log });
  }
}

/**
 * One PutObject of a recording's manifest: JSON, tagged (where the store takes tags) and encrypted
 * as its MP4 is. The sink writes it while recording; S3Storage when it finishes or recovers one.
 */
export function putManifest(
  client: S3Client,
  features: StoreFeatures,
  cfg: Pick<S3Settings, 'retentionClass' | 'sse' | 'kmsKeyId'>,
  o: { bucket: string; key: string; json: string },
  abortSignal: AbortSignal,
): Promise<unknown> {
  return sendTagged(features, retentionTags(cfg.retentionClass), (Tagging) =>
    client.send(
      new PutObjectCommand({
        Bucket: o.bucket,
        Key: o.key,
        Body: o.json,
        ContentType: 'application/json',
        Metadata: { 'retention-class': cfg.retentionClass },
        Tagging,
        ...encryption(cfg),
      }),
      { abortSignal },
    ),
  );
}

/** The tags on the MP4 and its manifest (for lifecycle rules), where the store takes tags. */
export function retentionTags(retentionClass: string): string {
  return new URLSearchParams({ 'retention-class': retentionClass, app: 'tessera' }).toString();
}
