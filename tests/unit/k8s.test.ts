/** The operational files are checked by what can run here: promtool, and consistency with the code. */
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';

const root = path.resolve(__dirname, '..', '..');
const read = (f: string) => fs.readFileSync(path.join(root, f), 'utf8');

describe('k8s and alerting', () => {
  test('promtool accepts the alert rules', () => {
    const r = spawnSync('promtool', ['check', 'rules', path.join(root, 'k8s/alerts.rules.yml')], { encoding: 'utf8' });
    expect(r.error).toBeUndefined();
    expect(`${r.stdout}${r.stderr}`).toMatch(/SUCCESS: \d+ rules found/);
    expect(r.status).toBe(0);
  });

  test('the PrometheusRule carries exactly the rules file', () => {
    const plain = read('k8s/alerts.rules.yml').split('\n').filter((l) => !l.startsWith('#')).join('\n').trim();
    const wrapped = read('k8s/prometheus-rule.yaml').split('\n');
    const spec = wrapped.slice(wrapped.indexOf('spec:') + 1).map((l) => l.replace(/^ {2}/, '')).join('\n').trim();
    expect(spec).toBe(plain);
  });

  test('the deployment drains: grace period above the app shutdown grace, readiness on /readyz, UDP range set', () => {
    const d = read('k8s/deployment.yaml');
    const grace = Number(/terminationGracePeriodSeconds: (\d+)/.exec(d)![1]);
    const appGrace = Number(/TESSERA_SHUTDOWN_GRACE_MS, value: "(\d+)"/.exec(d)![1]);
    expect(grace * 1000).toBeGreaterThan(appGrace);
    expect(d).toContain('path: /readyz');
    expect(d).toMatch(/RTC_MIN_PORT[\s\S]*RTC_MAX_PORT/);
    expect(d).toMatch(/kind: HorizontalPodAutoscaler[\s\S]*name: cpu/);
  });
});
