/**
 * Retention, legal hold and the audit trail on S3 (the S3-compatible test server over HTTP):
 * an expired recording is tagged for the bucket's lifecycle rule and hidden, never deleted by the
 * server; a held one is left alone; audit events are objects of their own, read back in order.
 */
import { GetObjectCommand, GetObjectTaggingCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { loadConfig } from '../../src/config';
import { logger } from '../../src/logger';
import { Recorder } from '../../src/pipeline/Recorder';
import { AuditLog } from '../../src/server/AuditLog';
import { S3Storage } from '../../src/storage/S3Storage';
import { S3TestServer } from '../helpers/s3server';
import { BUCKET, TEST_CREDENTIALS, s3TestConfig, tempDir } from '../helpers/s3fixtures';

jest.setTimeout(60_000);

const DAY = 86_400_000;
const T0 = Date.parse('2026-03-01T00:00:00Z');

test('expired: tagged tessera-expired=true and hidden; held: untouched; audit lines as objects, in order', async () => {
  const server = new S3TestServer({ buckets: [BUCKET] });
  await server.start();
  const dir = await tempDir('trust');
  const cfg = s3TestConfig(server.endpoint, path.join(dir, 'spool'));
  const storage = new S3Storage(cfg, { clientConfig: { credentials: TEST_CREDENTIALS } });
  const client = new S3Client({ endpoint: server.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: TEST_CREDENTIALS });
  const config = loadConfig({ PORT: '0', RECORDINGS_DIR: dir });
  const recorder = new Recorder({ config, storage, logger });
  try {
    for (const [id, held] of [['rec_a', false], ['rec_held', true]] as const) {
      const key = `${cfg.prefix}r1/${id}.mp4`;
      await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: Buffer.alloc(100) }));
      const manifest = { id, roomId: 'r1', status: 'available', startedAt: new Date(T0).toISOString(), layout: 'grid', location: { kind: 's3', bucket: BUCKET, key }, participants: [], retainUntil: new Date(T0 + 30 * DAY).toISOString(), ...(held ? { legalHold: true } : {}) };
      await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key.replace(/\.mp4$/, '.json'), Body: JSON.stringify(manifest) }));
    }
    await recorder.index.load();
    // lookups, a presigned URL and a ranged read cost no listing and no manifest GET
    const before = server.requests.length;
    for (let i = 0; i < 5; i++) expect((await recorder.get('rec_a'))?.id).toBe('rec_a');
    expect(await recorder.presignMedia('rec_a')).toMatch(/^http/);
    const part = await recorder.openMedia('rec_a', { start: 0, end: 9 });
    part?.stream.resume();
    expect(server.requests.slice(before).map((r) => r.op)).toEqual(['GetObject']);
    expect((await recorder.sweepRetention(T0 + 29 * DAY)).length).toBe(0);
    expect((await recorder.sweepRetention(T0 + 31 * DAY)).map((r) => r.id)).toEqual(['rec_a']);
    const tags = async (key: string) => Object.fromEntries(((await client.send(new GetObjectTaggingCommand({ Bucket: BUCKET, Key: key }))).TagSet ?? []).map((t) => [t.Key, t.Value]));
    for (const key of [`${cfg.prefix}r1/rec_a.mp4`, `${cfg.prefix}r1/rec_a.json`]) expect(await tags(key)).toMatchObject({ 'tessera-expired': 'true', app: 'tessera' });
    expect((await tags(`${cfg.prefix}r1/rec_held.mp4`))['tessera-expired']).toBeUndefined();
    // still in the bucket (the lifecycle rule deletes it), gone from the API, also after a restart
    const manifest = JSON.parse(await (await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: `${cfg.prefix}r1/rec_a.json` }))).Body!.transformToString()) as { expiredAt?: string };
    expect(manifest.expiredAt).toBe(new Date(T0 + 31 * DAY).toISOString());
    expect((await recorder.list()).map((r) => r.id)).toEqual(['rec_held']);
    const again = new Recorder({ config, storage, logger });
    expect((await again.list()).map((r) => r.id)).toEqual(['rec_held']);
    again.close();

    // the audit trail: one object per event, read back in order, none taken for a manifest
    const audit = new AuditLog({ store: storage, logger });
    for (const n of [1, 2, 3]) audit.record({ event: 'recording.downloaded', actor: { kind: 'api', id: `api:${n}`, role: 'read' }, recordingId: 'rec_held' });
    expect((await audit.query({ recordingId: 'rec_held' })).map((e) => e.actor.id)).toEqual(['api:1', 'api:2', 'api:3']);
    expect((await recorder.index.all()).length).toBe(1);
  } finally {
    recorder.close();
    client.destroy();
    await storage.close();
    await server.close();
    await fsp.rm(dir, { recursive: true, force: true });
  }
});
