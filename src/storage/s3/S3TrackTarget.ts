import type { S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import fs from 'node:fs';
import * as os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import type { Logger } from '../../logger';
import type { RecordingLocation } from '../../media/types';
import type { TrackMeta, TrackTarget } from '../../tracks/TrackWriter';
import { encryption } from './capabilities';

/** What a track's spool directory keeps so that recovery can finish it after a crash. */
export interface TrackSpoolState {
  version: 1;
  recordingId: string;
  bucket: string;
  key: string;
  /** The recording's manifest key, whose `tracks` entry recovery updates. */
  manifestKey: string;
  trackId: string;
  /** What the track is (the manifest's entry is rebuilt from it if no checkpoint listed the track). */
  track?: TrackMeta;
  pid: number;
  host: string;
  instanceId: string;
}

export const TRACK_STATE_SUFFIX = '.state.json';

/** Bytes a track may hold in memory waiting for S3 before it is cut short (an outage of minutes at camera rates). */
const MAX_PENDING_BYTES = 64 * 1024 * 1024;

/**
 * A track streamed into S3 with lib-storage's `Upload` (a body of unknown length, cut into parts
 * as it comes; the SDK retries each request). Parts already uploaded stay when the upload fails
 * (`leavePartsOnError`), and every byte is also appended to a local spool file: after a crash of
 * the process, recovery uploads the spool file whole (a track shorter than one part exists only
 * there); after the loss of the machine, it completes the multipart upload from its parts. The
 * spool file is removed once the object is complete.
 */
export class S3TrackTarget implements TrackTarget {
  readonly location: RecordingLocation;
  #upload: Upload;
  #body = new PassThrough({ highWaterMark: 1024 * 1024 });
  #done: Promise<unknown>;
  #spoolFile: string;
  #spool: fs.WriteStream;
  #bytes = 0;
  #error: Error | null = null;
  #log: Logger;

  constructor(o: { client: S3Client; bucket: string; key: string; contentType: string; partSizeBytes: number; sse: 'AES256' | 'aws:kms' | null; kmsKeyId: string | null; spoolDir: string; state: Omit<TrackSpoolState, 'version' | 'pid' | 'host' | 'bucket' | 'key'>; logger: Logger }) {
    this.location = { kind: 's3', bucket: o.bucket, key: o.key };
    this.#log = o.logger.child({ track: o.key });
    fs.mkdirSync(o.spoolDir, { recursive: true });
    const base = path.join(o.spoolDir, `${o.state.recordingId}-${o.state.trackId}`);
    this.#spoolFile = `${base}.mkv`;
    const state: TrackSpoolState = { version: 1, ...o.state, bucket: o.bucket, key: o.key, pid: process.pid, host: os.hostname() };
    fs.writeFileSync(base + TRACK_STATE_SUFFIX, JSON.stringify(state));
    this.#spool = fs.createWriteStream(this.#spoolFile, { flags: 'w' });
    this.#spool.on('error', (err) => this.#log.warn({ err: err.message }, 'track spool write failed'));
    this.#upload = new Upload({
      client: o.client,
      params: {
        Bucket: o.bucket,
        Key: o.key,
        Body: this.#body,
        ContentType: o.contentType,
        ...encryption(o),
      },
      partSize: o.partSizeBytes,
      queueSize: 2,
      leavePartsOnError: true,
    });
    this.#done = this.#upload.done().catch((err: Error) => {
      this.#error ??= err;
      this.#body.resume(); // never block the writer on a dead upload
      throw err;
    });
    this.#done.catch(() => undefined);
  }

  write(data: Buffer): void {
    this.#bytes += data.length;
    this.#spool.write(data);
    if (this.#error) return;
    if (this.#body.writableLength > MAX_PENDING_BYTES) {
      this.#error = new Error(`S3 took none of the last ${MAX_PENDING_BYTES} bytes of this track`);
      this.#log.warn(this.#error.message);
      void this.#upload.abort().catch(() => undefined);
      return;
    }
    this.#body.write(data);
  }

  async finish(): Promise<number> {
    await closeStream(this.#spool);
    this.#body.end();
    await this.#done;
    if (this.#error) throw this.#error;
    await removeSpool(this.#spoolFile);
    return this.#bytes;
  }

  /** Keeps the spool file and the uploaded parts: recovery makes the object from them. */
  async abort(): Promise<void> {
    await closeStream(this.#spool).catch(() => undefined);
    if (!this.#body.writableEnded) this.#body.destroy();
    await this.#upload.abort().catch(() => undefined);
  }
}

function closeStream(s: fs.WriteStream): Promise<void> {
  if (s.closed || s.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    s.end(() => resolve());
    s.once('error', () => resolve());
  });
}

async function removeSpool(mediaFile: string): Promise<void> {
  await fs.promises.rm(mediaFile, { force: true });
  await fs.promises.rm(mediaFile.replace(/\.mkv$/, TRACK_STATE_SUFFIX), { force: true });
}
