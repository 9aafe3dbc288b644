/**
 * Reading the project's alert rules: the rules themselves, and the metric names a PromQL
 * expression selects (what Prometheus would look up when it evaluates the rule).
 */
import fs from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';

export const ROOT = path.resolve(__dirname, '..', '..');
export const RULES_FILE = path.join(ROOT, 'k8s/alerts.rules.yml');
export const RULE_TESTS_FILE = path.join(ROOT, 'k8s/alerts.tests.yml');

export interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export function alertRules(file = RULES_FILE): AlertRule[] {
  const doc = parse(fs.readFileSync(file, 'utf8')) as { groups: { rules: AlertRule[] }[] };
  return doc.groups.flatMap((g) => g.rules).filter((r) => typeof r.alert === 'string');
}

const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'atan2', 'inf', 'nan']);

/**
 * The metric names an expression selects: identifiers that are not functions (followed by
 * `(`), keywords, label names (inside `{...}` or a `by (...)` list), strings or durations.
 */
export function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/gi, ' ');
  const names = [...bare.matchAll(/\b[A-Za-z_][A-Za-z0-9_:]*\b(?!\s*\()/g)].map((m) => m[0]);
  return [...new Set(names.filter((n) => !KEYWORDS.has(n.toLowerCase())))];
}
