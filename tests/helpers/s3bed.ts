/**
 * A test file's S3 bed: a fresh S3 test server per test (fault injection, see s3server.ts), a
 * temporary directory for the file (spool under it), and the S3Storage a test opens, all closed
 * after each test.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { S3Storage } from '../../src/storage/S3Storage';
import { S3TestServer } from './s3server';
import { BUCKET, tempDir } from './s3fixtures';

export interface S3Bed {
  server: S3TestServer;
  dir: string;
  /** The storage the running test opened (closed after it). */
  s3: S3Storage | null;
}

export function s3TestBed(tag: string): S3Bed {
  const bed: S3Bed = { server: null as unknown as S3TestServer, dir: '', s3: null };
  beforeAll(async () => {
    bed.dir = await tempDir(tag);
  });
  beforeEach(async () => {
    bed.server = new S3TestServer({ buckets: [BUCKET] });
    await bed.server.start();
  });
  afterEach(async () => {
    await bed.s3?.close();
    bed.s3 = null;
    await bed.server.close();
    await fsp.rm(path.join(bed.dir, 'spool'), { recursive: true, force: true });
  });
  afterAll(async () => {
    await fsp.rm(bed.dir, { recursive: true, force: true });
  });
  return bed;
}
