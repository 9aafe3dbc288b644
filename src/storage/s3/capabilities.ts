import {
  AbortMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  PutObjectCommand,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { S3_MAX_PARTS } from './parts';

/**
 * What the bucket's store supports, found by trying it (S3-compatible stores differ: OpenStack
 * Swift's s3api refuses object tagging and aws:kms with 501 NotImplemented and takes part numbers
 * up to 1000 only). `null` = not known yet (no probe has answered).
 */
export interface S3Capabilities {
  /** When the last probe answered (ISO time), null before. */
  checkedAt: string | null;
  write: boolean | null;
  read: boolean | null;
  multipart: boolean | null;
  /** Object tagging on upload (`x-amz-tagging`). Without it the retention class goes into metadata and the manifest only. */
  tagging: boolean | null;
  /** The configured server-side encryption (S3_SSE), and whether the store accepted it. */
  sse: 'AES256' | 'aws:kms' | null;
  sseAccepted: boolean | null;
  /** Highest part number the store takes (10,000 on AWS). */
  maxParts: number;
  /** Why something is missing (the store's own answers), for the log and /readyz. */
  problems: string[];
  /** The probe could not finish (the store unreachable, access denied, ...). */
  error: string | null;
}

/**
 * The server-side encryption a write asks for (S3_SSE), with the KMS key only for aws:kms. Every
 * object and upload Tessera creates asks for the same, so the probe tries exactly what recordings
 * will ask.
 */
export function encryption(o: { sse: S3Capabilities['sse']; kmsKeyId: string | null }): { ServerSideEncryption?: 'AES256' | 'aws:kms'; SSEKMSKeyId?: string } {
  return { ServerSideEncryption: o.sse ?? undefined, SSEKMSKeyId: o.sse === 'aws:kms' ? (o.kmsKeyId ?? undefined) : undefined };
}

export function unknownCapabilities(sse: S3Capabilities['sse']): S3Capabilities {
  return { checkedAt: null, write: null, read: null, multipart: null, tagging: null, sse, sseAccepted: null, maxParts: S3_MAX_PARTS, problems: [], error: null };
}

interface ErrLike {
  name?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

const describeError = (err: unknown): string => {
  const e = err as ErrLike;
  const status = e.$metadata?.httpStatusCode;
  return `${e.name ?? 'Error'}${status ? ` (${status})` : ''}: ${e.message ?? String(err)}`;
};

/** The store refuses a feature (as opposed to failing): 501, or a 400 naming what it will not do. */
function refuses(err: unknown, topic: RegExp): boolean {
  const e = err as ErrLike;
  const status = e.$metadata?.httpStatusCode;
  if (e.name === 'NotImplemented' || status === 501) return true;
  return (status === 400 || e.name === 'InvalidArgument' || e.name === 'InvalidRequest') && topic.test(e.message ?? '');
}

/** A refusal of the requested server-side encryption (its message names encryption). */
export const refusesEncryption = (err: unknown): boolean => refuses(err, /encrypt|kms/i) && /encrypt|kms/i.test((err as ErrLike).message ?? '');

/** A refusal of `x-amz-tagging` on a request that also carried it (not one of encryption). */
export const refusesTagging = (err: unknown): boolean => refuses(err, /tag/i) && !refusesEncryption(err);

const PART_RANGE_RE = /between 1 and (\d+)/i;

/**
 * Try the bucket the way recordings use it, with small objects under `probeKey`: PutObject with
 * the configured encryption (write), GetObject (read), PutObject with a tag (tagging),
 * CreateMultipartUpload + UploadPart 10,000 + AbortMultipartUpload (multipart and the part-number
 * limit). Everything it creates is removed. Throws only when the store cannot be reached or
 * refuses us outright (the caller reports it and tries again later).
 */
export async function probeCapabilities(
  client: S3Client,
  o: { bucket: string; probeKey: string; sse: S3Capabilities['sse']; kmsKeyId: string | null; signal?: AbortSignal },
): Promise<S3Capabilities> {
  const caps = unknownCapabilities(o.sse);
  const opt = { abortSignal: o.signal };
  const enc = encryption(o);
  const body = `tessera capability probe ${new Date().toISOString()}`;
  const created: string[] = [];
  try {
    // Write, with the encryption recordings will ask for. A refusal of the encryption is not a
    // refusal to write: try again without it to tell them apart (and never record that way).
    try {
      await client.send(new PutObjectCommand({ Bucket: o.bucket, Key: o.probeKey, Body: body, ContentType: 'text/plain', ...enc }), opt);
      created.push(o.probeKey);
      caps.write = true;
      caps.sseAccepted = o.sse ? true : null;
    } catch (err) {
      if (!o.sse || !refusesEncryption(err)) throw err;
      caps.sseAccepted = false;
      caps.problems.push(`S3_SSE=${o.sse} refused: ${describeError(err)}`);
      await client.send(new PutObjectCommand({ Bucket: o.bucket, Key: o.probeKey, Body: body, ContentType: 'text/plain' }), opt);
      created.push(o.probeKey);
      caps.write = true;
    }

    const got = await client.send(new GetObjectCommand({ Bucket: o.bucket, Key: o.probeKey }), opt);
    caps.read = (await got.Body?.transformToString()) === body;
    if (!caps.read) caps.problems.push('GetObject returned other bytes than were written');

    const tagged = `${o.probeKey}.tagged`;
    try {
      await client.send(new PutObjectCommand({ Bucket: o.bucket, Key: tagged, Body: body, ContentType: 'text/plain', Tagging: 'app=tessera' }), opt);
      created.push(tagged);
      caps.tagging = true;
    } catch (err) {
      if (!refusesTagging(err) && (err as ErrLike).name !== 'AccessDenied') throw err;
      caps.tagging = false;
      caps.problems.push(`object tagging refused: ${describeError(err)}`);
    }

    const mpuKey = `${o.probeKey}.multipart`;
    let uploadId: string | undefined;
    try {
      const out = await client.send(
        new CreateMultipartUploadCommand({ Bucket: o.bucket, Key: mpuKey, ContentType: 'application/octet-stream', ...(caps.sseAccepted === false ? {} : enc) }),
        opt,
      );
      uploadId = out.UploadId;
      if (!uploadId) throw Object.assign(new Error('CreateMultipartUpload returned no UploadId'), { name: 'InvalidResponse' });
      try {
        await client.send(new UploadPartCommand({ Bucket: o.bucket, Key: mpuKey, UploadId: uploadId, PartNumber: S3_MAX_PARTS, Body: 'x', ContentLength: 1 }), opt);
      } catch (err) {
        // Swift: "Part number must be an integer between 1 and 1000, inclusive".
        const m = PART_RANGE_RE.exec((err as ErrLike).message ?? '');
        if (!m) throw err;
        caps.maxParts = Math.min(S3_MAX_PARTS, Number(m[1]));
        caps.problems.push(`part numbers up to ${caps.maxParts} only`);
      }
      caps.multipart = true;
    } catch (err) {
      caps.multipart = false;
      caps.problems.push(`multipart upload failed: ${describeError(err)}`);
    } finally {
      if (uploadId) await client.send(new AbortMultipartUploadCommand({ Bucket: o.bucket, Key: mpuKey, UploadId: uploadId }), opt).catch(() => undefined);
    }
    caps.checkedAt = new Date().toISOString();
    return caps;
  } catch (err) {
    throw Object.assign(new Error(`bucket ${o.bucket}: ${describeError(err)}`), { cause: err, name: (err as ErrLike).name ?? 'Error' });
  } finally {
    for (const key of created) await client.send(new DeleteObjectCommand({ Bucket: o.bucket, Key: key }), opt).catch(() => undefined);
  }
}

/** What a sink needs to know about the store, owned by the S3Storage that made it. */
export interface StoreFeatures {
  readonly caps: S3Capabilities;
  /** A write with `x-amz-tagging` was refused: stop sending tags (said once in the log and a metric). */
  tagsRefused(err: unknown): void;
}

/**
 * Send a write with `tags` where the store takes tags. When it refuses them (a store the probe
 * did not run against, or one that changed), the write goes again at once without tags and
 * `features` learns it, so every later write skips them: the retention class is still in the
 * object's metadata and the manifest.
 */
export async function sendTagged<T>(features: StoreFeatures, tags: string, send: (tagging: string | undefined) => Promise<T>): Promise<T> {
  const tagging = features.caps.tagging === false ? undefined : tags;
  try {
    return await send(tagging);
  } catch (err) {
    if (!tagging || !refusesTagging(err)) throw err;
    features.tagsRefused(err);
    return send(undefined);
  }
}
