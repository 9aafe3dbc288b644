/**
 * One real S3 implementation per test run: OpenStack Swift with its s3api middleware
 * (scripts/swift-s3.sh). The first test file that asks for it starts it (4–10 s); later files of
 * the same run reuse it; the global teardown stops it (tests/helpers/globalSetup.js). Each file
 * works in buckets of its own. Swift must be installed (`.ci/run` does): without it the test
 * fails with the install command rather than skipping.
 */
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const SWIFT_SCRIPT = path.join(__dirname, '../../scripts/swift-s3.sh');

export interface SwiftS3 {
  endpoint: string;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
}

/** The run's Swift, started on first use. */
export async function swiftS3(): Promise<SwiftS3> {
  // Set by the global setup; a file run outside it gets a Swift of its own process (stopped with it).
  const dir = process.env.TESSERA_TEST_SWIFT_DIR ?? path.join(os.tmpdir(), `tessera-swift-${process.pid}`);
  const owner = process.env.TESSERA_TEST_SWIFT_OWNER ?? String(process.pid);
  let info: { endpoint: string; region: string; accessKeyId: string; secretAccessKey: string };
  try {
    info = JSON.parse(await fsp.readFile(path.join(dir, 'endpoint.json'), 'utf8'));
  } catch {
    const t = Date.now();
    const out = await new Promise<string>((resolve, reject) => {
      execFile('bash', [SWIFT_SCRIPT, 'start', dir, owner], { timeout: 60_000 }, (err, stdout, stderr) =>
        err ? reject(new Error(`scripts/swift-s3.sh start failed: ${stderr || err.message}`)) : resolve(stdout),
      );
    });
    info = JSON.parse(out.trim().split('\n').pop()!);
    // eslint-disable-next-line no-console
    console.log(`Swift (s3api) started in ${Date.now() - t} ms at ${info.endpoint}`);
  }
  return { endpoint: info.endpoint, region: info.region, credentials: { accessKeyId: info.accessKeyId, secretAccessKey: info.secretAccessKey } };
}

/** An SDK client for test set-up and checks (configured as S3Storage configures its own). */
export function swiftClient(s: SwiftS3, over: { secretAccessKey?: string; region?: string } = {}): S3Client {
  return new S3Client({
    region: over.region ?? s.region,
    endpoint: s.endpoint,
    forcePathStyle: true,
    credentials: { ...s.credentials, ...(over.secretAccessKey ? { secretAccessKey: over.secretAccessKey } : {}) },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 1,
  });
}

/** A new empty bucket (a name of its own per test, so files never see each other's objects). */
export async function swiftBucket(s: SwiftS3, tag: string): Promise<string> {
  const name = `${tag}-${randomBytes(4).toString('hex')}`.toLowerCase();
  const c = swiftClient(s);
  try {
    // The account and container servers may still be warming up right after the start.
    for (let i = 0; ; i++) {
      try {
        await c.send(new CreateBucketCommand({ Bucket: name }));
        return name;
      } catch (err) {
        if (i >= 20) throw err;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  } finally {
    c.destroy();
  }
}
