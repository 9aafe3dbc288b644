/**
 * The pod keeps its deletion cost current. No Kubernetes runs here, so a local HTTP server stands
 * in for the API server and checks what a real one checks: the path, the bearer token, the
 * merge-patch content type and the annotation's value (a string).
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { logger } from '../../src/logger';
import { DELETION_COST_ANNOTATION, PodDeletionCost, podCostTargetFromEnv } from '../../src/server/podDeletionCost';

jest.setTimeout(20_000);

interface Patch {
  path: string;
  auth: string | undefined;
  type: string | undefined;
  body: { metadata: { annotations: Record<string, string> } };
}

let api: http.Server;
let patches: Patch[];
let failNext = 0;

beforeEach(async () => {
  patches = [];
  failNext = 0;
  api = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      if (req.method !== 'PATCH') return res.writeHead(405).end();
      if (failNext > 0) {
        failNext--;
        return res.writeHead(503).end();
      }
      patches.push({ path: req.url!, auth: req.headers.authorization, type: req.headers['content-type'], body: JSON.parse(body) as Patch['body'] });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => api.listen(0, '127.0.0.1', r));
});

afterEach(async () => {
  await new Promise((r) => api.close(r));
});

const apiUrl = () => `http://127.0.0.1:${(api.address() as AddressInfo).port}`;

test('writes participants + 10 per recording to its own pod, only when it changed, and retries a failed write', async () => {
  const load = { participants: 3, recordings: 1 };
  const cost = new PodDeletionCost({ target: { apiUrl: apiUrl(), namespace: 'meet', pod: 'tessera-abc', token: 'tok' }, load: () => load, intervalMs: 60_000, logger });
  try {
    await cost.update();
    expect(patches).toHaveLength(1);
    expect(patches[0]).toEqual({
      path: '/api/v1/namespaces/meet/pods/tessera-abc',
      auth: 'Bearer tok',
      type: 'application/merge-patch+json',
      body: { metadata: { annotations: { [DELETION_COST_ANNOTATION]: '13' } } },
    });
    await cost.update();
    expect(patches).toHaveLength(1); // unchanged: nothing sent

    load.participants = 0;
    load.recordings = 0;
    failNext = 1;
    await cost.update();
    expect(patches).toHaveLength(1);
    expect(cost.written).toBe(13); // the failed write is not taken for done
    await cost.update();
    expect(patches.map((p) => p.body.metadata.annotations[DELETION_COST_ANNOTATION])).toEqual(['13', '0']);
    expect(cost.written).toBe(0);
  } finally {
    cost.close();
  }
});

test('the target comes from the downward API and the service account; none outside Kubernetes', () => {
  const sa = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-sa-'));
  try {
    fs.writeFileSync(path.join(sa, 'token'), 'secret-token\n');
    fs.writeFileSync(path.join(sa, 'ca.crt'), 'CA');
    const env = { KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443', POD_NAME: 'p', POD_NAMESPACE: 'ns' };
    expect(podCostTargetFromEnv(env, sa)).toEqual({ apiUrl: 'https://10.0.0.1:443', namespace: 'ns', pod: 'p', token: 'secret-token', ca: Buffer.from('CA') });
    expect(podCostTargetFromEnv({ ...env, POD_NAME: undefined }, sa)).toBeNull();
    expect(podCostTargetFromEnv({}, sa)).toBeNull();
    expect(podCostTargetFromEnv(env, path.join(sa, 'missing'))).toBeNull();
  } finally {
    fs.rmSync(sa, { recursive: true, force: true });
  }
});
