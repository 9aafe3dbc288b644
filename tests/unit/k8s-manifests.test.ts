/**
 * Every manifest in k8s/ validated against the Kubernetes API's schemas (and the Prometheus
 * Operator's for the PrometheusRule), as the API server would check them at `kubectl apply
 * --validate=strict`: types, required fields, formats, and fields the schema does not have.
 * Then the references between the objects, which no schema sees: selectors that select the
 * pods, ports named where they are used, the autoscaler's target.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';

const root = path.resolve(__dirname, '..', '..');
const k8s = path.join(root, 'k8s');
const VALIDATOR = path.join(root, 'tests/helpers/k8s-validate.mjs');
/** YAML in k8s/ that is not a Kubernetes object: Prometheus's own rules file and its tests. */
const NOT_MANIFESTS = ['alerts.rules.yml', 'alerts.tests.yml'];

const manifestFiles = fs
  .readdirSync(k8s)
  .filter((f) => /\.ya?ml$/.test(f) && !NOT_MANIFESTS.includes(f))
  .map((f) => path.join(k8s, f));

interface Result { file: string; index: number; apiVersion?: string; kind?: string; name?: string; errors: string[] }

function validate(files: string[]): Result[] {
  const r = spawnSync(process.execPath, [VALIDATOR, ...files], { cwd: root, encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`validator failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as Result[];
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = any;
const objects: Obj[] = manifestFiles.flatMap((f) => parseAllDocuments(fs.readFileSync(f, 'utf8')).map((d) => d.toJS() as Obj).filter(Boolean));
const ofKind = (kind: string) => objects.filter((o) => o.kind === kind);
const selects = (selector: Record<string, string> | undefined, labels: Record<string, string> | undefined) =>
  !!selector && Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels?.[k] === v);

test('every manifest in k8s/ is valid against the Kubernetes schemas', () => {
  const results = validate(manifestFiles);
  expect(results.length).toBe(objects.length);
  const bad = results.filter((r) => r.errors.length > 0).map((r) => `${path.basename(r.file)}#${r.index} ${r.kind}/${r.name}: ${r.errors.join('; ')}`);
  expect(bad).toEqual([]);
  const kinds = results.map((r) => r.kind);
  for (const k of ['Deployment', 'Service', 'HorizontalPodAutoscaler', 'PodDisruptionBudget', 'PrometheusRule']) expect(kinds).toContain(k);
});

test('the validator refuses wrong types, misspelt fields, unknown kinds and bad durations', () => {
  const file = path.join(os.tmpdir(), `tessera-k8s-bad-${process.pid}.yaml`);
  fs.writeFileSync(file, [
    'apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: x }\nspec:\n  selector: { matchLabels: { app: x } }\n  template:\n    metadata: { labels: { app: x } }\n    spec:\n      terminationGracePeriodSecond: 3600\n      containers: [{ name: c, image: i, ports: [{ containerPort: "8080" }] }]',
    'apiVersion: v1\nkind: Service\nmetadata: { name: x }\nspec: { ports: [{ port: 80, targetPort: http }], selectr: { app: x } }',
    'apiVersion: apps/v1\nkind: Deploymnet\nmetadata: { name: x }',
    'apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: { name: x }\nspec: { maxReplicas: 2 }',
    'apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata: { name: x }\nspec: { groups: [{ name: g, rules: [{ alert: A, expr: up, for: 5 minutes }] }] }',
    'apiVersion: v1\nkind: Service\nmetadata: { name: fine }\nspec: { ports: [{ port: 80 }] }',
  ].join('\n---\n'));
  try {
    const errors = validate([file]).map((r) => r.errors.join('; '));
    expect(errors[0]).toMatch(/containerPort must be integer/);
    // Misspelt fields are reported once the types are right.
    fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace('containerPort: "8080"', 'containerPort: 8080'));
    const again = validate([file]).map((r) => r.errors.join('; '));
    expect(again[0]).toMatch(/spec\/template\/spec\/terminationGracePeriodSecond is not a field of Deployment/);
    expect(again[1]).toMatch(/spec\/selectr is not a field of Service/);
    expect(again[2]).toMatch(/unknown kind Deploymnet/);
    expect(again[3]).toMatch(/spec must have required property scaleTargetRef/);
    expect(again[4]).toMatch(/rules\/0\/for must match pattern/);
    expect(again[5]).toBe('');
  } finally {
    fs.rmSync(file, { force: true });
  }
});

test('selectors select the pods, named ports exist, the autoscaler targets the Deployment', () => {
  const problems: string[] = [];
  const deployments = ofKind('Deployment');
  expect(deployments.length).toBeGreaterThan(0);
  for (const d of deployments) {
    const pod = d.spec.template;
    // The API server refuses a Deployment whose selector does not match its own pods.
    if (!selects(d.spec.selector.matchLabels, pod.metadata.labels)) problems.push(`Deployment ${d.metadata.name}: selector does not match its pod labels`);
    for (const c of pod.spec.containers) {
      const portNames = new Set((c.ports ?? []).map((p: Obj) => p.name).filter(Boolean));
      for (const probe of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
        const port = c[probe]?.httpGet?.port;
        if (typeof port === 'string' && !portNames.has(port)) problems.push(`${d.metadata.name}/${c.name}: ${probe} uses port ${port}, which the container does not name`);
      }
      const scrapePort = pod.metadata.annotations?.['prometheus.io/port'];
      if (scrapePort && !(c.ports ?? []).some((p: Obj) => String(p.containerPort) === scrapePort)) problems.push(`${d.metadata.name}: prometheus.io/port ${scrapePort} is not a container port`);
    }
  }
  const podsOf = (selector: Record<string, string>) => deployments.filter((d) => selects(selector, d.spec.template.metadata.labels));
  for (const s of ofKind('Service')) {
    const targets = podsOf(s.spec.selector);
    if (targets.length === 0) problems.push(`Service ${s.metadata.name} selects no pods`);
    for (const p of s.spec.ports) {
      if (typeof p.targetPort !== 'string') continue;
      const named = targets.some((d) => d.spec.template.spec.containers.some((c: Obj) => (c.ports ?? []).some((cp: Obj) => cp.name === p.targetPort)));
      if (!named) problems.push(`Service ${s.metadata.name}: targetPort ${p.targetPort} is not a named container port`);
    }
  }
  for (const pdb of ofKind('PodDisruptionBudget')) if (podsOf(pdb.spec.selector.matchLabels).length === 0) problems.push(`PodDisruptionBudget ${pdb.metadata.name} selects no pods`);
  for (const h of ofKind('HorizontalPodAutoscaler')) {
    const ref = h.spec.scaleTargetRef;
    if (!objects.some((o) => o.kind === ref.kind && o.apiVersion === ref.apiVersion && o.metadata.name === ref.name)) problems.push(`HPA ${h.metadata.name} targets ${ref.kind}/${ref.name}, which is not in k8s/`);
    if (h.spec.minReplicas > h.spec.maxReplicas) problems.push(`HPA ${h.metadata.name}: minReplicas above maxReplicas`);
  }
  expect(problems).toEqual([]);
});
