import fs from 'node:fs';
import https from 'node:https';
import http from 'node:http';
import type { Logger } from '../logger';

/**
 * Keeps this pod's `controller.kubernetes.io/pod-deletion-cost` annotation equal to its load, so
 * that when the autoscaler scales the Deployment in, the ReplicaSet controller deletes the pod
 * whose deletion cuts the fewest calls (lowest cost first). The cost is the number of people in
 * calls here plus ten per running recording (a recording is the expensive thing to move).
 *
 * Runs only inside Kubernetes: it needs the pod's name and namespace (downward API: POD_NAME,
 * POD_NAMESPACE), the API server's address (KUBERNETES_SERVICE_HOST/PORT) and the service
 * account's token and CA; the pod's service account needs `patch` on its own pod (k8s/rbac.yaml).
 * The annotation is written only when the cost changed, at most once per interval. A failed
 * write is logged once per kind of failure and retried at the next interval: the cost is a hint
 * to the scheduler, never a reason to disturb a call.
 */
export interface PodCostTarget {
  /** https://host:port of the API server (or http:// for a local stand-in in tests). */
  apiUrl: string;
  namespace: string;
  pod: string;
  token: string;
  ca?: Buffer;
}

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
export const DELETION_COST_ANNOTATION = 'controller.kubernetes.io/pod-deletion-cost';

/** The target from the pod's environment, or null outside Kubernetes. */
export function podCostTargetFromEnv(env: NodeJS.ProcessEnv = process.env, saDir = SA_DIR): PodCostTarget | null {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT ?? '443';
  const pod = env.POD_NAME;
  const namespace = env.POD_NAMESPACE;
  if (!host || !pod || !namespace) return null;
  let token: string;
  try {
    token = fs.readFileSync(`${saDir}/token`, 'utf8').trim();
  } catch {
    return null;
  }
  let ca: Buffer | undefined;
  try {
    ca = fs.readFileSync(`${saDir}/ca.crt`);
  } catch {
    ca = undefined;
  }
  const h = host.includes(':') ? `[${host}]` : host;
  return { apiUrl: `https://${h}:${port}`, namespace, pod, token, ca };
}

export function deletionCost(load: { participants: number; recordings: number }): number {
  return load.participants + 10 * load.recordings;
}

export class PodDeletionCost {
  readonly #target: PodCostTarget;
  readonly #load: () => { participants: number; recordings: number };
  readonly #log: Logger;
  readonly #timer: NodeJS.Timeout;
  #written: number | null = null;
  #inFlight: Promise<void> | null = null;
  #lastError = '';

  constructor(init: { target: PodCostTarget; load: () => { participants: number; recordings: number }; intervalMs: number; logger: Logger }) {
    this.#target = init.target;
    this.#load = init.load;
    this.#log = init.logger.child({ component: 'pod-deletion-cost' });
    this.#timer = setInterval(() => void this.update(), init.intervalMs);
    this.#timer.unref();
    void this.update();
  }

  /** The cost last written, or null before the first write. */
  get written(): number | null {
    return this.#written;
  }

  /** Writes the cost now if it changed. Resolves when written (or failed: logged). */
  async update(): Promise<void> {
    while (this.#inFlight) await this.#inFlight;
    const cost = deletionCost(this.#load());
    if (cost === this.#written) return;
    this.#inFlight = this.#write(cost);
    try {
      await this.#inFlight;
    } finally {
      this.#inFlight = null;
    }
  }

  async #write(cost: number): Promise<void> {
    try {
      await this.#patch(cost);
      this.#written = cost;
      this.#lastError = '';
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      if (msg !== this.#lastError) this.#log.warn({ err: msg }, 'pod-deletion-cost not written; retrying');
      this.#lastError = msg;
    }
  }

  close(): void {
    clearInterval(this.#timer);
  }

  #patch(cost: number): Promise<void> {
    const t = this.#target;
    const url = new URL(`/api/v1/namespaces/${encodeURIComponent(t.namespace)}/pods/${encodeURIComponent(t.pod)}`, t.apiUrl);
    const body = JSON.stringify({ metadata: { annotations: { [DELETION_COST_ANNOTATION]: String(cost) } } });
    const mod = url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = mod.request(
        url,
        {
          method: 'PATCH',
          headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/merge-patch+json', 'content-length': Buffer.byteLength(body) },
          ca: t.ca,
          timeout: 5000,
        },
        (res) => {
          res.resume();
          res.on('end', () => ((res.statusCode ?? 0) < 300 ? resolve() : reject(new Error(`API server answered ${res.statusCode}`))));
        },
      );
      req.on('timeout', () => req.destroy(new Error('API server did not answer within 5 s')));
      req.on('error', reject);
      req.end(body);
    });
  }
}
