import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  PutObjectTaggingCommand,
  S3Client,
  UploadPartCommand,
  type Part,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { randomBytes, randomUUID } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import { Upload } from '@aws-sdk/lib-storage';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import type { Config } from '../config';
import { TesseraError } from '../errors';
import { logger as rootLogger, type Logger } from '../logger';
import { metrics } from '../metrics';
import type { RecordingLocation } from '../media/types';
import type { MediaRange, Storage } from './Sink';
import { Spool } from './Spool';
import { fragmentEndMs, lastMoofOffset, parseInit, wholeFragmentsLength } from './s3/fmp4';
import { encryption, probeCapabilities, unknownCapabilities, type S3Capabilities, type StoreFeatures } from './s3/capabilities';
import { FINAL_FILE, PART_FILE_RE, S3Sink, STATE_FILE, putManifest, type S3Settings, type SpoolState } from './s3/S3Sink';
import { retryOptions, withRetry, type RetryOptions } from './s3/withRetry';
import { S3TrackTarget, TRACK_STATE_SUFFIX, type TrackSpoolState } from './s3/S3TrackTarget';
import { rendersPrefixOf, tracksPrefixOf } from './trackKeys';
import type { TrackInfo, TrackMeta, TrackTarget } from '../tracks/TrackWriter';

export interface S3StorageOptions {
  logger?: Logger;
  /** Extra S3 client settings (tests pass credentials here). */
  clientConfig?: Partial<S3ClientConfig>;
  /** Run recovery every this many ms after the first recover() call (0 = only when called). */
  sweepIntervalMs?: number;
}

export interface RecoveryReport {
  /** Recording ids whose interrupted upload was completed into an object. */
  completed: string[];
  /** Upload ids aborted (nothing usable, older than orphanMaxAgeMs). */
  aborted: string[];
  /** Upload ids left alone (may still be live somewhere, or too young to abort). */
  skipped: string[];
}

type Manifest = Record<string, unknown>;

/** What /readyz shows of the storage: the bucket and what the store was found to support. */
export interface StorageStatus extends S3Capabilities {
  kind: 's3';
  bucket: string;
  /** Recordings can be stored as configured: null until a probe answered. */
  ok: boolean | null;
}

/** A failed probe (the store unreachable at start) is tried again this often. */
const REPROBE_MS = 30_000;

const MANIFEST_SUFFIX = '.json';
const MEDIA_SUFFIX = '.mp4';
const TRACKS_INFIX = '.tracks/';

/**
 * Recordings in S3 (or any S3-compatible endpoint). Key layout, under S3_PREFIX:
 *   <prefix><roomId>/<recordingId>.mp4    the MP4 (multipart upload while recording)
 *   <prefix><roomId>/<recordingId>.json   its manifest (the contract's Recording; status
 *                                         "recording" + an `upload` block while in flight)
 *   <prefix><roomId>/<recordingId>.tracks/<track>.webm|.mkv   per-track recordings, when asked for
 * Every request goes through withRetry (own backoff, per-attempt abort); the SDK's own retries are
 * off (maxAttempts 1) so a deadline means what it says.
 */
export class S3Storage implements Storage {
  readonly kind = 's3' as const;
  readonly client: S3Client;
  /**
   * The client of the per-track uploads (lib-storage's Upload): the SDK's own retries on, since
   * Upload sends its parts itself; a track's part that fails for good leaves the track to recovery.
   */
  readonly trackClient: S3Client;
  readonly spool: Spool;
  #cfg: S3Settings;
  #log: Logger;
  #instanceId = randomUUID();
  #sinks = new Map<string, S3Sink>();
  #closed = false;
  #closeAc = new AbortController();
  #recovering: Promise<RecoveryReport> | null = null;
  #sweepIntervalMs: number;
  #sweepTimer: NodeJS.Timeout | null = null;
  #caps: S3Capabilities;
  #features: StoreFeatures;
  #probing: Promise<S3Capabilities> | null = null;
  #recoverDeferred = false;
  #reprobeTimer: NodeJS.Timeout | null = null;

  constructor(cfg: Readonly<Config['s3']>, opts: S3StorageOptions = {}) {
    if (!cfg.bucket) throw new TesseraError('REC_ERR_INTERNAL', 'S3Storage needs a bucket');
    this.#cfg = { ...cfg, bucket: cfg.bucket };
    this.#log = (opts.logger ?? rootLogger).child({ component: 's3storage', bucket: cfg.bucket });
    this.spool = new Spool(cfg.spoolDir, cfg.spoolMaxBytes);
    this.#sweepIntervalMs = opts.sweepIntervalMs ?? 0;
    this.#caps = unknownCapabilities(cfg.sse);
    this.#features = { caps: this.#caps, tagsRefused: (err) => this.#noTagging(err) };
    this.client = new S3Client({
      ...clientSettings(cfg),
      // Our retry loop owns retries (deadlines, spool); the SDK's would multiply with it.
      maxAttempts: 1,
      ...opts.clientConfig,
    });
    this.trackClient = new S3Client({ ...clientSettings(cfg), maxAttempts: 6, ...opts.clientConfig });
  }

  /** A track of a recording, beside its MP4 (`<recording>.tracks/<file>`). */
  createTrackTarget(recording: { id: string; location: RecordingLocation }, track: TrackMeta, file: string): TrackTarget {
    if (this.#closed) throw new TesseraError('REC_ERR_SHUTDOWN', 'storage is closed');
    const key = tracksPrefixOf(recording.location.key) + file;
    return new S3TrackTarget({
      client: this.trackClient,
      bucket: recording.location.bucket ?? this.#cfg.bucket,
      key,
      contentType: file.endsWith('.webm') ? 'video/webm' : 'video/x-matroska',
      partSizeBytes: this.#cfg.partSizeBytes,
      sse: this.#cfg.sse,
      kmsKeyId: this.#cfg.kmsKeyId,
      spoolDir: this.#trackSpoolDir(),
      state: { recordingId: recording.id, manifestKey: this.manifestKey(recording.location.key), trackId: track.id, track, instanceId: this.#instanceId },
      logger: this.#log,
    });
  }

  #trackSpoolDir(): string {
    return path.join(this.#cfg.spoolDir, '.tracks');
  }

  mediaKey(roomId: string, recordingId: string): string {
    return `${this.#cfg.prefix}${roomId}/${recordingId}${MEDIA_SUFFIX}`;
  }

  manifestKey(mediaKey: string): string {
    return mediaKey.endsWith(MEDIA_SUFFIX) ? mediaKey.slice(0, -MEDIA_SUFFIX.length) + MANIFEST_SUFFIX : mediaKey + MANIFEST_SUFFIX;
  }

  createSink(recordingId: string, roomId: string): S3Sink {
    if (this.#closed) throw new TesseraError('REC_ERR_SHUTDOWN', 'storage is closed');
    if (this.#sinks.has(recordingId)) throw new TesseraError('REC_ERR_SINK', `a sink for ${recordingId} exists already`);
    const key = this.mediaKey(roomId, recordingId);
    const sink = new S3Sink({
      client: this.client,
      cfg: this.#cfg,
      spool: this.spool,
      features: this.#features,
      instanceId: this.#instanceId,
      logger: this.#log,
      recordingId,
      roomId,
      key,
      manifestKey: this.manifestKey(key),
    });
    this.#sinks.set(recordingId, sink);
    sink.once('close', () => {
      if (this.#sinks.get(recordingId) === sink) this.#sinks.delete(recordingId);
    });
    return sink;
  }

  /** What the store was found to support (all null before probe()). */
  get capabilities(): Readonly<S3Capabilities> {
    return this.#caps;
  }

  /**
   * Check the bucket as recordings use it (write with the configured encryption, read, tagging,
   * multipart, the part-number limit), log what was found and keep it for /readyz and the sinks.
   * Never throws: when the store cannot be reached the result carries `error`, and the check runs
   * again every 30 s until it answers. An encryption the store refuses is `sseAccepted: false`;
   * recordings still ask for it (and fail): they are never stored unencrypted.
   */
  probe(): Promise<S3Capabilities> {
    if (this.#closed) return Promise.resolve(this.#caps);
    this.#probing ??= this.#probe().finally(() => {
      this.#probing = null;
    });
    return this.#probing;
  }

  status(): StorageStatus {
    const c = this.#caps;
    const ok = c.error ? false : c.checkedAt === null ? null : c.write === true && c.read === true && c.multipart === true && c.sseAccepted !== false;
    return { kind: 's3', bucket: this.#cfg.bucket, ok, ...c, problems: [...c.problems] };
  }

  async #probe(): Promise<S3Capabilities> {
    if (this.#reprobeTimer) clearTimeout(this.#reprobeTimer);
    this.#reprobeTimer = null;
    const deadline = Date.now() + this.#cfg.openTimeoutMs;
    try {
      const found = await withRetry(
        (signal) =>
          probeCapabilities(this.client, {
            bucket: this.#cfg.bucket,
            probeKey: `${this.#cfg.prefix}.tessera-probe/${this.#instanceId}`,
            sse: this.#cfg.sse,
            kmsKeyId: this.#cfg.kmsKeyId,
            signal,
          }),
        this.#retry('capability probe', () => deadline),
      );
      // A refusal of tags seen by a sink before the probe answered stays learnt.
      if (this.#caps.tagging === false) found.tagging = false;
      Object.assign(this.#caps, found);
      if (this.#recoverDeferred) {
        this.#recoverDeferred = false;
        this.runRecovery().catch((err: Error) => this.#log.error({ err: err.message }, 'deferred recovery failed'));
      }
    } catch (err) {
      this.#caps.error = (err as Error).message;
      this.#log.error({ err: this.#caps.error, retryInMs: REPROBE_MS }, 'storage check failed: the bucket could not be checked');
      if (!this.#closed) {
        this.#reprobeTimer = setTimeout(() => void this.probe(), REPROBE_MS);
        this.#reprobeTimer.unref();
      }
      return this.#caps;
    }
    const c = this.#caps;
    for (const name of ['write', 'read', 'multipart', 'tagging'] as const) metrics.s3Capability.set({ capability: name }, c[name] ? 1 : 0);
    if (c.sse) metrics.s3Capability.set({ capability: 'encryption' }, c.sseAccepted ? 1 : 0);
    const { problems, ...found } = c;
    this.#log.info({ capabilities: found, problems }, 'storage checked');
    if (c.tagging === false) this.#logNoTagging(problems.find((p) => p.startsWith('object tagging')) ?? 'refused');
    if (c.sseAccepted === false) {
      this.#log.error({ sse: c.sse }, `the store refuses S3_SSE=${c.sse}: recordings would fail rather than be stored unencrypted`);
    }
    return c;
  }

  #taggingLogged = false;

  #noTagging(err: unknown): void {
    if (this.#caps.tagging === false) return;
    this.#caps.tagging = false;
    metrics.s3Capability.set({ capability: 'tagging' }, 0);
    this.#logNoTagging((err as Error).message);
  }

  #logNoTagging(reason: string): void {
    if (this.#taggingLogged) return;
    this.#taggingLogged = true;
    this.#log.warn(
      { reason, retentionClass: this.#cfg.retentionClass },
      'the store does not support object tagging: the retention class goes into object metadata (x-amz-meta-retention-class) and the manifest instead',
    );
  }

  async listManifests(): Promise<object[]> {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const out = await this.#call('ListObjectsV2', (abortSignal) =>
        this.client.send(new ListObjectsV2Command({ Bucket: this.#cfg.bucket, Prefix: this.#cfg.prefix, ContinuationToken: token }), { abortSignal }),
      );
      for (const o of out.Contents ?? []) if (o.Key?.endsWith(MANIFEST_SUFFIX)) keys.push(o.Key);
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (token);
    const result: object[] = [];
    for (let i = 0; i < keys.length; i += 8) {
      const batch = await Promise.all(keys.slice(i, i + 8).map((k) => this.#getManifest(k)));
      for (const m of batch) {
        if (!m) continue;
        const { upload: _upload, ...recording } = m;
        result.push(recording);
      }
    }
    return result;
  }

  /** Merges `patch` into a recording's manifest (retention, legal hold, consent). */
  async updateManifest(location: RecordingLocation, patch: object): Promise<void> {
    const key = this.manifestKey(location.key);
    const current = await this.#getManifest(key);
    if (!current) throw new TesseraError('REC_ERR_NOT_FOUND', `no manifest at ${key}`);
    await this.#putManifest(location.bucket ?? this.#cfg.bucket, key, { ...current, ...patch } as Manifest);
  }

  /**
   * Retention on S3: the server does not delete; it tags the MP4 and its manifest
   * `tessera-expired=true` and the bucket's lifecycle rule (README "Retention") deletes tagged
   * objects, so deletion follows the bucket's own policy and audit (and object lock, if any).
   */
  async markExpired(location: RecordingLocation): Promise<void> {
    const bucket = location.bucket ?? this.#cfg.bucket;
    // Its tracks and re-renders go with it: the same rule deletes them (untagged, they would outlive it).
    const beside = [...(await this.#listKeys(tracksPrefixOf(location.key))), ...(await this.#listKeys(rendersPrefixOf(location.key)))];
    for (const Key of [location.key, this.manifestKey(location.key), ...beside]) {
      await this.#call('PutObjectTagging', (abortSignal) =>
        this.client.send(
          new PutObjectTaggingCommand({ Bucket: bucket, Key, Tagging: { TagSet: [{ Key: 'retention-class', Value: this.#cfg.retentionClass }, { Key: 'app', Value: 'tessera' }, { Key: 'tessera-expired', Value: 'true' }] } }),
          { abortSignal },
        ),
      );
    }
  }

  /**
   * The audit trail: S3 cannot append, so one object per event, `<prefix>.audit/<time>-<random>.jsonl`
   * (not a manifest: listManifests reads `.json` keys only). Keys sort by time.
   */
  async appendAudit(line: string): Promise<void> {
    const key = `${this.#cfg.prefix}.audit/${new Date().toISOString()}-${randomBytes(4).toString('hex')}.jsonl`;
    await this.#call('PutObject audit', (abortSignal) =>
      this.client.send(new PutObjectCommand({ Bucket: this.#cfg.bucket, Key: key, Body: line + '\n', ContentType: 'application/x-ndjson', ...encryption(this.#cfg) }), { abortSignal }),
    );
  }

  async readAudit(): Promise<string[]> {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const out = await this.#call('ListObjectsV2 audit', (abortSignal) =>
        this.client.send(new ListObjectsV2Command({ Bucket: this.#cfg.bucket, Prefix: `${this.#cfg.prefix}.audit/`, ContinuationToken: token }), { abortSignal }),
      );
      for (const o of out.Contents ?? []) if (o.Key) keys.push(o.Key);
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (token);
    const lines: string[] = [];
    for (const key of keys.sort()) {
      const out = await this.#call('GetObject audit', (abortSignal) => this.client.send(new GetObjectCommand({ Bucket: this.#cfg.bucket, Key: key }), { abortSignal }));
      lines.push(...(await (out.Body as { transformToString(): Promise<string> }).transformToString()).split('\n').filter((l) => l.length));
    }
    return lines;
  }

  async openMedia(location: RecordingLocation, range?: MediaRange): Promise<{ size: number; stream: NodeJS.ReadableStream } | null> {
    const bucket = location.bucket ?? this.#cfg.bucket;
    const Range = range ? `bytes=${range.start}-${range.end ?? ''}` : undefined;
    try {
      const out = await this.#call('GetObject', (abortSignal) => this.client.send(new GetObjectCommand({ Bucket: bucket, Key: location.key, Range }), { abortSignal }));
      const total = out.ContentRange ? Number(/\/(\d+)$/.exec(out.ContentRange)?.[1]) : out.ContentLength;
      return { size: total ?? 0, stream: out.Body as unknown as Readable };
    } catch (err) {
      const name = (err as Error).name;
      if (name === 'NoSuchKey' || name === 'NotFound') return null;
      if (name === 'InvalidRange') throw new TesseraError('REC_ERR_BAD_REQUEST', `range ${Range} is not satisfiable`);
      throw err;
    }
  }

  async presignMedia(location: RecordingLocation): Promise<string | null> {
    return getSignedUrl(this.client, new GetObjectCommand({ Bucket: location.bucket ?? this.#cfg.bucket, Key: location.key }), {
      expiresIn: this.#cfg.presignExpiresSec,
    });
  }

  /**
   * A finished local file (a re-render) uploaded with lib-storage's Upload (multipart for large
   * files, with the SDK's retries), encrypted as configured. A failed upload leaves nothing.
   */
  async putFile(location: RecordingLocation, file: string, contentType: string): Promise<number> {
    const size = (await fsp.stat(file)).size;
    const upload = new Upload({
      client: this.trackClient,
      params: {
        Bucket: location.bucket ?? this.#cfg.bucket,
        Key: location.key,
        Body: createReadStream(file),
        ContentType: contentType,
        ...encryption(this.#cfg),
      },
      partSize: Math.max(5 * 1024 * 1024, this.#cfg.partSizeBytes),
      queueSize: 2,
    });
    await upload.done();
    return size;
  }

  async deleteRecording(location: RecordingLocation): Promise<void> {
    const bucket = location.bucket ?? this.#cfg.bucket;
    // An upload still in flight for this key (a crashed recording) goes too.
    const uploads = await this.#listUploads(location.key);
    for (const u of uploads) {
      if (u.Key !== location.key || !u.UploadId) continue;
      await this.#abortUpload(bucket, location.key, u.UploadId);
    }
    // One DeleteObject per key, not DeleteObjects: Swift's s3api requires Content-MD5 on that
    // call, which the SDK no longer sends (it sends a CRC32 checksum); DeleteObject is universal.
    for (const key of [location.key, this.manifestKey(location.key)]) {
      await this.#call('DeleteObject', (abortSignal) => this.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }), { abortSignal }));
    }
    await this.#deleteTracks(bucket, location.key);
  }

  /** A recording's tracks and re-renders go with it: objects, uploads in flight and local spool copies. */
  async #deleteTracks(bucket: string, mediaKey: string): Promise<void> {
    const prefixes = [tracksPrefixOf(mediaKey), rendersPrefixOf(mediaKey)];
    for (const prefix of prefixes) {
      for (const u of await this.#listUploads(prefix)) if (u.Key && u.UploadId) await this.#abortUpload(bucket, u.Key, u.UploadId);
      for (const key of await this.#listKeys(prefix)) {
        await this.#call('DeleteObject', (abortSignal) => this.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }), { abortSignal }));
      }
    }
    const manifestKey = this.manifestKey(mediaKey);
    for (const state of await this.#trackSpools()) {
      if (state.s.manifestKey === manifestKey) await removeTrackSpool(state.file);
    }
  }

  async #listKeys(prefix: string): Promise<string[]> {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const out = await this.#call('ListObjectsV2', (abortSignal) =>
        this.client.send(new ListObjectsV2Command({ Bucket: this.#cfg.bucket, Prefix: prefix, ContinuationToken: token }), { abortSignal }),
      );
      for (const o of out.Contents ?? []) if (o.Key) keys.push(o.Key);
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (token);
    return keys;
  }

  /** Track spool copies on this host: their state files. */
  async #trackSpools(): Promise<Array<{ file: string; s: TrackSpoolState }>> {
    const dir = this.#trackSpoolDir();
    let names: string[];
    try {
      names = await fsp.readdir(dir);
    } catch {
      return [];
    }
    const out: Array<{ file: string; s: TrackSpoolState }> = [];
    for (const n of names.filter((n) => n.endsWith(TRACK_STATE_SUFFIX))) {
      const s = await readJson<TrackSpoolState>(path.join(dir, n));
      if (s) out.push({ file: path.join(dir, n.slice(0, -TRACK_STATE_SUFFIX.length) + '.mkv'), s });
    }
    return out;
  }

  /**
   * Finish what a dead recorder left: local spool directories of this host (uploads the spooled
   * tail, cut at the last whole fragment) and in-flight multipart uploads under the prefix whose
   * checkpoint is older than staleAfterMs (completes the parts uploaded: each part is whole
   * fragments). The object plays to its last whole fragment; the manifest says "available" with
   * REC_ERR_INTERRUPTED. Uploads with nothing usable older than orphanMaxAgeMs are aborted.
   */
  async recover(): Promise<void> {
    if (this.#caps.error) {
      // The store could not be reached at start: recover once the check answers (not a crash
      // loop at start; the pod stays unready meanwhile).
      this.#recoverDeferred = true;
      this.#log.warn('recovery of interrupted uploads deferred until the bucket answers');
      return;
    }
    await this.runRecovery();
  }

  /** recover() with its report (what was completed, aborted, left alone). */
  runRecovery(): Promise<RecoveryReport> {
    if (this.#closed) return Promise.resolve({ completed: [], aborted: [], skipped: [] });
    if (!this.#recovering) {
      this.#recovering = this.#recover().finally(() => {
        this.#recovering = null;
      });
      if (this.#sweepIntervalMs > 0 && !this.#sweepTimer) {
        this.#sweepTimer = setInterval(() => {
          this.runRecovery().catch((err: Error) => this.#log.warn({ err: err.message }, 'sweep failed'));
        }, this.#sweepIntervalMs);
        this.#sweepTimer.unref();
      }
    }
    return this.#recovering;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#sweepTimer) clearInterval(this.#sweepTimer);
    this.#sweepTimer = null;
    if (this.#reprobeTimer) clearTimeout(this.#reprobeTimer);
    this.#reprobeTimer = null;
    for (const sink of [...this.#sinks.values()]) sink.close();
    this.#sinks.clear();
    this.#closeAc.abort();
    await this.#recovering?.catch(() => undefined);
    await this.#probing?.catch(() => undefined);
    this.client.destroy();
    this.trackClient.destroy();
  }

  // ---- recovery --------------------------------------------------------------------------

  async #recover(): Promise<RecoveryReport> {
    const report: RecoveryReport = { completed: [], aborted: [], skipped: [] };
    const handled = new Set<string>();
    for (const dir of await this.spool.listRecordingDirs()) {
      try {
        await this.#recoverSpoolDir(dir, report, handled);
      } catch (err) {
        this.#log.error({ dir, err: (err as Error).message }, 'recovery of a spool directory failed');
      }
    }
    const trackKeys = new Set<string>();
    for (const t of await this.#trackSpools()) {
      try {
        const key = await this.#recoverTrackSpool(t.file, t.s, report);
        if (key) trackKeys.add(key);
      } catch (err) {
        this.#log.error({ key: t.s.key, err: (err as Error).message }, 'recovery of a track failed');
      }
    }
    const live = new Set([...this.#sinks.values()].map((s) => s.uploadId));
    for (const u of await this.#listUploads(this.#cfg.prefix)) {
      if (!u.Key || !u.UploadId || handled.has(u.UploadId) || live.has(u.UploadId)) continue;
      if (u.Key.includes(TRACKS_INFIX)) {
        if (trackKeys.has(u.Key)) continue;
        try {
          await this.#recoverRemoteTrack(u.Key, u.UploadId, u.Initiated ?? new Date(0), report);
        } catch (err) {
          this.#log.error({ key: u.Key, err: (err as Error).message }, 'recovery of a track upload failed');
        }
        continue;
      }
      try {
        await this.#recoverRemote(u.Key, u.UploadId, u.Initiated ?? new Date(0), report);
      } catch (err) {
        this.#log.error({ key: u.Key, err: (err as Error).message }, 'recovery of an upload failed');
      }
    }
    if (report.completed.length || report.aborted.length) this.#log.info(report, 'recovery done');
    return report;
  }

  async #recoverSpoolDir(dir: string, report: RecoveryReport, handled: Set<string>): Promise<void> {
    const state = await readJson<SpoolState>(path.join(dir, STATE_FILE));
    if (!state) {
      // A sink that died before its upload existed, or not ours: only remove it once old.
      const st = await fsp.stat(dir);
      if (Date.now() - st.mtimeMs > this.#cfg.staleAfterMs) await fsp.rm(dir, { recursive: true, force: true });
      return;
    }
    if (this.#sinks.has(state.recordingId)) return;
    if (state.uploadId) handled.add(state.uploadId);
    if (state.instanceId !== this.#instanceId && state.host === os.hostname() && state.pid !== process.pid && pidAlive(state.pid)) {
      // Another live process on this host may own it; only a stale one is taken over.
      if (Date.now() - (await newestMtime(dir)) < this.#cfg.staleAfterMs) {
        if (state.uploadId) report.skipped.push(state.uploadId);
        return;
      }
    }
    if (!state.uploadId) {
      await fsp.rm(dir, { recursive: true, force: true });
      return;
    }
    const final = await readJson<Manifest>(path.join(dir, FINAL_FILE));
    const log = this.#log.child({ recordingId: state.recordingId, roomId: state.roomId, uploadId: state.uploadId });
    // The object exists only once the upload was completed (keys are unique per recording). Ask
    // that first: AWS answers ListParts after Complete with NoSuchUpload, but Swift still lists
    // the parts (and takes more, and a second Complete), so ListParts alone cannot tell.
    const existing = await this.#headSize(state.bucket, state.key);
    const listed = existing === null ? await this.#listParts(state.bucket, state.key, state.uploadId) : null;
    if (listed === null) {
      // Completed (crash after Complete) or aborted.
      const size = existing ?? (await this.#headSize(state.bucket, state.key));
      if (size !== null && final) {
        await this.#putManifest(state.bucket, state.manifestKey, {
          ...final,
          status: final.status === 'failed' ? 'failed' : 'available',
          bytes: size,
          location: { kind: 's3', bucket: state.bucket, key: state.key },
          retentionClass: this.#cfg.retentionClass,
        });
        report.completed.push(state.recordingId);
      }
      log.warn({ objectBytes: size }, 'recovery: upload no longer exists');
      await fsp.rm(dir, { recursive: true, force: true });
      return;
    }
    const parts = contiguousPrefix(listed);
    // Spooled parts that S3 has not acknowledged, in order, the last one cut at its last whole fragment.
    const files = (await fsp.readdir(dir))
      .map((f) => ({ f, m: PART_FILE_RE.exec(f) }))
      .filter((x): x is { f: string; m: RegExpExecArray } => !!x.m)
      .map((x) => ({ n: Number(x.m[1]), file: path.join(dir, x.f) }))
      .sort((a, b) => a.n - b.n)
      .filter((x) => x.n > parts.length);
    let expected = parts.length + 1;
    const deadline = Date.now() + Math.max(this.#cfg.finishTimeoutMs, 60_000);
    let torn = false;
    for (const x of files) {
      if (x.n !== expected || torn) break;
      const buf = await fsp.readFile(x.file);
      const whole = wholeFragmentsLength(buf);
      if (whole === 0) break;
      const body = buf.subarray(0, whole);
      // A torn part (the one being written at the crash) can only be the last part.
      if (whole < buf.length) torn = true;
      const out = await withRetry(
        (abortSignal) =>
          this.client.send(new UploadPartCommand({ Bucket: state.bucket, Key: state.key, UploadId: state.uploadId!, PartNumber: x.n, Body: body, ContentLength: body.length }), { abortSignal }),
        this.#retry(`recover UploadPart ${x.n}`, () => deadline),
      );
      parts.push({ PartNumber: x.n, ETag: out.ETag, Size: body.length });
      expected++;
    }
    const base: Manifest = final ?? (await this.#getManifest(state.manifestKey)) ?? {
      id: state.recordingId,
      roomId: state.roomId,
      startedAt: state.startedAt,
      layout: null,
      participants: [],
    };
    await this.#completeRecovered(state.bucket, state.key, state.manifestKey, state.uploadId, parts, base, !!final, log);
    report.completed.push(state.recordingId);
    await fsp.rm(dir, { recursive: true, force: true });
  }

  /**
   * A track whose recorder died: its spool file holds every byte written. Returns the key when
   * it was handled (or is live), so its multipart upload is not also recovered from its parts.
   */
  async #recoverTrackSpool(file: string, s: TrackSpoolState, report: RecoveryReport): Promise<string | null> {
    if (s.instanceId === this.#instanceId) return s.key; // ours, running
    if (s.host === os.hostname() && s.pid !== process.pid && pidAlive(s.pid)) {
      const st = await fsp.stat(file).catch(() => null);
      if (st && Date.now() - st.mtimeMs < this.#cfg.staleAfterMs) return s.key; // another live recorder's
    }
    const manifest = await this.#getManifest(s.manifestKey);
    if (!manifest) {
      // The recording was deleted (or never got a manifest): nothing to recover into.
      await removeTrackSpool(file);
      return s.key;
    }
    for (const u of await this.#listUploads(s.key)) if (u.Key === s.key && u.UploadId) await this.#abortUpload(s.bucket, s.key, u.UploadId);
    const body = await fsp.readFile(file).catch(() => null);
    if (!body || body.length === 0) {
      await removeTrackSpool(file);
      return s.key;
    }
    await this.#call('PutObject track', (abortSignal) =>
      this.client.send(
        new PutObjectCommand({ Bucket: s.bucket, Key: s.key, Body: body, ContentLength: body.length, ContentType: s.key.endsWith('.webm') ? 'video/webm' : 'video/x-matroska', ...encryption(this.#cfg) }),
        { abortSignal },
      ),
    );
    await this.#noteRecoveredTrack(s.manifestKey, s.key, body.length, s.track);
    await removeTrackSpool(file);
    report.completed.push(`${s.recordingId}:${s.trackId}`);
    this.#log.warn({ key: s.key, bytes: body.length }, 'recovery: track uploaded from its spool copy');
    return s.key;
  }

  /** A track upload left without its spool copy (the machine was lost): complete it from its parts. */
  async #recoverRemoteTrack(key: string, uploadId: string, initiated: Date, report: RecoveryReport): Promise<void> {
    const bucket = this.#cfg.bucket;
    const mediaKey = key.slice(0, key.indexOf(TRACKS_INFIX)) + MEDIA_SUFFIX;
    const manifestKey = this.manifestKey(mediaKey);
    const manifest = await this.#getManifest(manifestKey);
    const upload = manifest?.upload as { checkpointAt?: string } | undefined;
    const lastSign = upload?.checkpointAt ? Date.parse(upload.checkpointAt) : initiated.getTime();
    if (manifest?.status === 'recording' && Date.now() - lastSign < this.#cfg.staleAfterMs) {
      report.skipped.push(uploadId);
      return;
    }
    const listed = await this.#listParts(bucket, key, uploadId);
    if (listed === null) return;
    const parts = contiguousPrefix(listed);
    if (!manifest || parts.length === 0) {
      if (!manifest || Date.now() - initiated.getTime() > this.#cfg.orphanMaxAgeMs) {
        await this.#abortUpload(bucket, key, uploadId);
        report.aborted.push(uploadId);
      } else report.skipped.push(uploadId);
      return;
    }
    await this.#call('CompleteMultipartUpload track', (abortSignal) =>
      this.client.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId, MultipartUpload: { Parts: parts.map((p) => ({ PartNumber: p.PartNumber, ETag: p.ETag })) } }), { abortSignal }),
    );
    const bytes = parts.reduce((sum, p) => sum + (p.Size ?? 0), 0);
    await this.#noteRecoveredTrack(manifestKey, key, bytes);
    report.completed.push(key);
    this.#log.warn({ key, parts: parts.length, bytes }, 'recovery: track completed from its uploaded parts');
  }

  /**
   * The manifest's entry for a recovered track: its size now, and `incomplete` (cut short). A
   * track the manifest does not list yet (the crash came before a checkpoint listed it) is added
   * with what is known of it; its place on the recording's clock (`start`) is then unknown.
   */
  async #noteRecoveredTrack(manifestKey: string, key: string, bytes: number, meta?: TrackMeta): Promise<void> {
    const m = await this.#getManifest(manifestKey);
    if (!m) return;
    const listed = Array.isArray(m.tracks) ? (m.tracks as TrackInfo[]) : [];
    const location = { kind: 's3' as const, bucket: this.#cfg.bucket, key };
    let tracks = listed.map((t) => (t.location?.key === key ? { ...t, bytes, state: 'incomplete' as const } : t));
    if (!listed.some((t) => t.location?.key === key)) {
      const file = key.slice(key.lastIndexOf('/') + 1);
      const kind = (meta?.kind ?? /^\d+-([a-z-]+?)-/.exec(file)?.[1] ?? 'camera') as TrackInfo['kind'];
      tracks = [...tracks, { id: meta?.id ?? file, participantId: meta?.participantId ?? '', name: meta?.name ?? '', sourceId: meta?.sourceId ?? '', kind, codec: meta?.codec ?? (file.endsWith('.mkv') ? 'h264' : kind === 'microphone' || kind === 'screen-audio' ? 'opus' : 'vp8'), container: file.endsWith('.mkv') ? 'mkv' : 'webm', startedAt: '', location, bytes, packets: 0, state: 'incomplete' } as unknown as TrackInfo];
    }
    await this.#putManifest(this.#cfg.bucket, manifestKey, { ...m, tracks });
  }

  async #recoverRemote(key: string, uploadId: string, initiated: Date, report: RecoveryReport): Promise<void> {
    const bucket = this.#cfg.bucket;
    const manifestKey = this.manifestKey(key);
    const manifest = key.endsWith(MEDIA_SUFFIX) ? await this.#getManifest(manifestKey) : null;
    const upload = manifest?.upload as { uploadId?: string; checkpointAt?: string } | undefined;
    const lastSign = upload?.uploadId === uploadId && upload.checkpointAt ? Date.parse(upload.checkpointAt) : initiated.getTime();
    const log = this.#log.child({ key, uploadId });
    if (Date.now() - lastSign < this.#cfg.staleAfterMs) {
      report.skipped.push(uploadId);
      return;
    }
    const listed = await this.#listParts(bucket, key, uploadId);
    if (listed === null) return;
    const parts = contiguousPrefix(listed);
    if (parts.length === 0 || !manifest) {
      if (Date.now() - initiated.getTime() > this.#cfg.orphanMaxAgeMs) {
        await this.#abortUpload(bucket, key, uploadId);
        if (manifest?.status === 'recording') {
          await this.#putManifest(bucket, manifestKey, {
            ...manifest,
            status: 'failed',
            endedAt: manifest.endedAt ?? new Date(lastSign).toISOString(),
            error: { code: 'REC_ERR_INTERRUPTED', message: 'the recorder stopped before any part of the recording was stored' },
            upload: undefined,
          });
        }
        log.warn({ parts: listed.length }, 'recovery: orphaned upload aborted');
        report.aborted.push(uploadId);
      } else {
        report.skipped.push(uploadId);
      }
      return;
    }
    await this.#completeRecovered(bucket, key, manifestKey, uploadId, parts, manifest, false, log);
    report.completed.push(String(manifest.id ?? key));
  }

  async #completeRecovered(
    bucket: string,
    key: string,
    manifestKey: string,
    uploadId: string,
    parts: Array<{ PartNumber?: number; ETag?: string; Size?: number }>,
    base: Manifest,
    finished: boolean,
    log: Logger,
  ): Promise<void> {
    const location = { kind: 's3', bucket, key };
    if (parts.length === 0) {
      await this.#abortUpload(bucket, key, uploadId);
      await this.#putManifest(bucket, manifestKey, {
        ...base,
        status: 'failed',
        endedAt: base.endedAt ?? new Date().toISOString(),
        location,
        error: { code: 'REC_ERR_INTERRUPTED', message: 'the recorder stopped before any part of the recording was stored' },
        upload: undefined,
      });
      log.warn('recovery: nothing usable, upload aborted');
      return;
    }
    const deadline = Date.now() + Math.max(this.#cfg.finishTimeoutMs, 60_000);
    await withRetry(
      (abortSignal) =>
        this.client.send(
          new CompleteMultipartUploadCommand({
            Bucket: bucket,
            Key: key,
            UploadId: uploadId,
            MultipartUpload: { Parts: parts.map((p) => ({ PartNumber: p.PartNumber, ETag: p.ETag })) },
          }),
          { abortSignal },
        ),
      this.#retry('recover CompleteMultipartUpload', () => deadline),
    );
    const bytes = parts.reduce((s, p) => s + (p.Size ?? 0), 0);
    const durationMs = await this.#probeDurationMs(bucket, key, bytes, parts[parts.length - 1].Size ?? 0).catch(() => null);
    const startedAt = typeof base.startedAt === 'string' ? base.startedAt : null;
    const manifest: Manifest = {
      ...base,
      status: finished ? (base.status === 'failed' ? 'failed' : 'available') : 'available',
      location,
      retentionClass: this.#cfg.retentionClass,
      bytes,
      durationMs: durationMs ?? base.durationMs,
      endedAt: base.endedAt ?? (startedAt && durationMs !== null ? new Date(Date.parse(startedAt) + durationMs).toISOString() : new Date().toISOString()),
      availableAt: new Date().toISOString(),
      upload: undefined,
    };
    if (!finished) {
      manifest.error = {
        code: 'REC_ERR_INTERRUPTED',
        message: `the recorder stopped mid-recording; recovered up to the last whole fragment${durationMs !== null ? ` (${(durationMs / 1000).toFixed(1)} s)` : ''}`,
      };
    }
    await this.#putManifest(bucket, manifestKey, manifest);
    log.warn({ parts: parts.length, bytes, durationMs }, 'recovery: interrupted upload completed');
  }

  /** Media time at the end of the object's last fragment: init from the head, last moof from the last part. */
  async #probeDurationMs(bucket: string, key: string, size: number, lastPartSize: number): Promise<number | null> {
    const get = async (start: number, end: number): Promise<Buffer> => {
      const out = await this.#call('GetObject', (abortSignal) =>
        this.client.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=${start}-${end}` }), { abortSignal }),
      );
      return Buffer.from(await out.Body!.transformToByteArray());
    };
    const head = await get(0, Math.min(size, 4 * 1024 * 1024) - 1);
    const init = parseInit(head);
    if (!init) return null;
    const tailStart = size - lastPartSize;
    const tail = tailStart === 0 && head.length >= size ? head : await get(tailStart, size - 1);
    const off = lastMoofOffset(tail);
    return off < 0 ? null : fragmentEndMs(tail, init, off);
  }

  // ---- S3 helpers ------------------------------------------------------------------------

  async #listUploads(prefix: string): Promise<Array<{ Key?: string; UploadId?: string; Initiated?: Date }>> {
    const all: Array<{ Key?: string; UploadId?: string; Initiated?: Date }> = [];
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      const out = await this.#call('ListMultipartUploads', (abortSignal) =>
        this.client.send(new ListMultipartUploadsCommand({ Bucket: this.#cfg.bucket, Prefix: prefix, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }), { abortSignal }),
      );
      all.push(...(out.Uploads ?? []));
      if (!out.IsTruncated) return all;
      keyMarker = out.NextKeyMarker;
      uploadIdMarker = out.NextUploadIdMarker;
    }
  }

  /** Every part of an upload, or null when the upload does not exist. */
  async #listParts(bucket: string, key: string, uploadId: string): Promise<Part[] | null> {
    const parts: Part[] = [];
    let marker: string | undefined;
    try {
      for (;;) {
        const out = await this.#call('ListParts', (abortSignal) =>
          this.client.send(new ListPartsCommand({ Bucket: bucket, Key: key, UploadId: uploadId, PartNumberMarker: marker }), { abortSignal }),
        );
        parts.push(...(out.Parts ?? []));
        if (!out.IsTruncated) return parts;
        marker = out.NextPartNumberMarker;
      }
    } catch (err) {
      if ((err as Error).name === 'NoSuchUpload') return null;
      throw err;
    }
  }

  async #abortUpload(bucket: string, key: string, uploadId: string): Promise<void> {
    try {
      await this.#call('AbortMultipartUpload', (abortSignal) =>
        this.client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId }), { abortSignal }),
      );
    } catch (err) {
      // Both mean the upload is gone. AWS answers NoSuchUpload; Swift answers NoSuchKey for an
      // upload that was completed (and leaves the object alone).
      const name = (err as Error).name;
      if (name !== 'NoSuchUpload' && name !== 'NoSuchKey') throw err;
    }
  }

  async #headSize(bucket: string, key: string): Promise<number | null> {
    try {
      const h = await this.#call('HeadObject', (abortSignal) => this.client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }), { abortSignal }));
      return h.ContentLength ?? null;
    } catch (err) {
      if ((err as Error).name === 'NotFound' || (err as Error).name === 'NoSuchKey') return null;
      throw err;
    }
  }

  async #getManifest(key: string): Promise<Manifest | null> {
    try {
      const out = await this.#call('GetObject manifest', (abortSignal) => this.client.send(new GetObjectCommand({ Bucket: this.#cfg.bucket, Key: key }), { abortSignal }));
      const m = JSON.parse(await out.Body!.transformToString()) as unknown;
      return m && typeof m === 'object' && !Array.isArray(m) ? (m as Manifest) : null;
    } catch (err) {
      const name = (err as Error).name;
      if (name === 'NoSuchKey' || name === 'NotFound' || err instanceof SyntaxError) return null;
      throw err;
    }
  }

  async #putManifest(bucket: string, key: string, body: Manifest): Promise<void> {
    const json = JSON.stringify(body, null, 2);
    await this.#call('PutObject manifest', (abortSignal) => putManifest(this.client, this.#features, this.#cfg, { bucket, key, json }, abortSignal));
  }


  /** One request with retries bounded by finishTimeoutMs (API calls and recovery). */
  #call<T>(op: string, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.#cfg.finishTimeoutMs;
    return withRetry(fn, this.#retry(op, () => deadline));
  }

  #retry(op: string, deadline: () => number): RetryOptions {
    return retryOptions(this.#cfg, { op, deadline, signal: this.#closeAc.signal, logger: this.#log });
  }
}

/** Parts 1..k with no gap (a crash can leave a later part without an earlier one). */
function contiguousPrefix(parts: Part[]): Part[] {
  const sorted = [...parts].sort((a, b) => (a.PartNumber ?? 0) - (b.PartNumber ?? 0));
  const out: Part[] = [];
  for (const p of sorted) {
    if (p.PartNumber !== out.length + 1) break;
    out.push(p);
  }
  return out;
}

/** What both of the storage's S3 clients share: the endpoint, plain bodies, timeouts that fail. */
function clientSettings(cfg: Readonly<Config['s3']>): S3ClientConfig {
  return {
    region: cfg.region,
    endpoint: cfg.endpoint ?? undefined,
    forcePathStyle: cfg.forcePathStyle,
    // Checksums only where S3 requires them: keeps parts as plain bodies for any S3-compatible endpoint.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // A hung request must fail, not warn (the handler's default only logs).
    requestHandler: {
      requestTimeout: cfg.requestTimeoutMs,
      connectionTimeout: Math.min(cfg.requestTimeoutMs, 10_000),
      throwOnRequestTimeout: true,
    },
  };
}

async function removeTrackSpool(mediaFile: string): Promise<void> {
  await fsp.rm(mediaFile, { force: true });
  await fsp.rm(mediaFile.replace(/\.mkv$/, TRACK_STATE_SUFFIX), { force: true });
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function newestMtime(dir: string): Promise<number> {
  let newest = 0;
  for (const f of await fsp.readdir(dir)) {
    const st = await fsp.stat(path.join(dir, f)).catch(() => null);
    if (st && st.mtimeMs > newest) newest = st.mtimeMs;
  }
  return newest;
}

async function readJson<T>(file: string): Promise<T | null> {
  try {
    return JSON.parse(await fsp.readFile(file, 'utf8')) as T;
  } catch {
    return null;
  }
}
