/**
 * The alert rules (k8s/alerts.rules.yml) against the code and their own unit tests:
 * `promtool test rules` runs k8s/alerts.tests.yml, which must show every alert both firing and
 * not firing; and every metric a rule reads must be one src/metrics.ts registers, taken from
 * the registry itself, so renaming a metric breaks this test rather than silencing an alert.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { parse } from 'yaml';
import { registry } from '../../src/metrics';
import { alertRules, metricNames, RULE_TESTS_FILE } from '../helpers/promql';

/** The series names a scrape of the registry has: a histogram `h` is `h_bucket`, `h_sum`, `h_count`. */
async function exposedNames(): Promise<Set<string>> {
  const names = new Set<string>();
  for (const m of await registry.getMetricsAsJSON()) {
    const type = String(m.type);
    if (type === 'histogram' || type === 'summary') {
      for (const s of type === 'histogram' ? ['_bucket', '_sum', '_count'] : ['', '_sum', '_count']) names.add(`${m.name}${s}`);
    } else names.add(m.name);
  }
  return names;
}

test('promtool test rules: every test case of k8s/alerts.tests.yml passes', () => {
  const r = spawnSync('promtool', ['test', 'rules', RULE_TESTS_FILE], { encoding: 'utf8', timeout: 30_000 });
  expect(r.error).toBeUndefined();
  expect(`${r.stdout}${r.stderr}`).toMatch(/SUCCESS/);
  expect(r.status).toBe(0);
});

test('every alert is tested firing (with its labels and annotations) and not firing', () => {
  interface Case { alertname: string; exp_alerts?: { exp_labels?: object; exp_annotations?: object }[] }
  const doc = parse(fs.readFileSync(RULE_TESTS_FILE, 'utf8')) as { tests: { alert_rule_test?: Case[] }[] };
  const cases = doc.tests.flatMap((t) => t.alert_rule_test ?? []);
  const rules = alertRules();
  expect(rules.length).toBeGreaterThan(0);
  const missing: string[] = [];
  for (const rule of rules) {
    const mine = cases.filter((c) => c.alertname === rule.alert);
    const firing = mine.some((c) => (c.exp_alerts ?? []).some((a) => a.exp_labels && a.exp_annotations));
    const quiet = mine.some((c) => (c.exp_alerts ?? []).length === 0);
    if (!firing) missing.push(`${rule.alert}: no case where it fires with its labels and annotations`);
    if (!quiet) missing.push(`${rule.alert}: no case where it stays quiet`);
  }
  for (const c of cases) if (!rules.some((r) => r.alert === c.alertname)) missing.push(`a test names ${c.alertname}, which is not a rule`);
  expect(missing).toEqual([]);
});

test('every metric the alerts read is registered by src/metrics.ts', async () => {
  const exposed = await exposedNames();
  // The registry is the real one: the contract's metrics and the process metrics are in it.
  expect(exposed).toContain('tessera_recordings_capacity');
  expect(exposed).toContain('process_cpu_seconds_total');
  expect(exposed).toContain('nodejs_eventloop_lag_p99_seconds');
  const unknown: string[] = [];
  for (const rule of alertRules()) {
    const used = metricNames(rule.expr);
    expect(used.length).toBeGreaterThan(0);
    for (const name of used) if (!exposed.has(name)) unknown.push(`${rule.alert} reads ${name}`);
  }
  expect(unknown).toEqual([]);
});

test('the metric-name reader finds the names a PromQL expression selects, and nothing else', () => {
  // A renamed metric must show up as an unknown name, so the reader must not lose any.
  expect(metricNames('sum by (le, job) (rate(a_bucket{x="y", le!="+Inf"}[5m] offset 1h)) > bool 0.5 * on (instance) group_left (z) b unless c'))
    .toEqual(['a_bucket', 'b', 'c']);
  expect(metricNames('histogram_quantile(0.95, sum(rate(tessera_time_to_available_seconds_bucket[30m])) by (le)) > 10')).toEqual(['tessera_time_to_available_seconds_bucket']);
  expect(metricNames('tessera_recordings_active >= tessera_recordings_capacity and tessera_recordings_capacity > 0')).toEqual(['tessera_recordings_active', 'tessera_recordings_capacity']);
});

test('both recording results are exported from 0 at start, so the first failure is an increase', async () => {
  const text = await registry.metrics();
  expect(text).toMatch(/^tessera_recordings_total\{result="failed"\} 0$/m);
  expect(text).toMatch(/^tessera_recordings_total\{result="available"\} 0$/m);
});
