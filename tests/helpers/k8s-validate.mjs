/**
 * Validates Kubernetes manifests against the API's schemas, as `kubectl apply --validate=strict`
 * would before the API server accepts them: types, required fields, formats and enums from the
 * `kubernetes-models` validators (Kubernetes' OpenAPI schemas compiled; the Prometheus Operator's
 * CRDs for `PrometheusRule`), and fields the schema does not know (a misspelt key, which the
 * compiled validators let through).
 *
 * An ES module run as a child process (`node k8s-validate.mjs FILE...`): the models are ESM-only
 * and jest runs the tests as CommonJS. Prints one JSON array, an entry per YAML document:
 * `{ file, index, apiVersion, kind, name, errors: string[] }`.
 */
import fs from 'node:fs';
import { parseAllDocuments } from 'yaml';

/** apiVersion → the module holding its models. */
function modelModule(apiVersion) {
  if (apiVersion === 'monitoring.coreos.com/v1') return '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
  if (!/^([a-z0-9.-]+\/)?v\d+((alpha|beta)\d+)?$/.test(apiVersion)) return null;
  return `kubernetes-models/${apiVersion}`;
}

/**
 * A deep copy of `value` whose objects record which of their keys are read. The compiled
 * validators read every property their schema declares (and every key of a map), so a key
 * nobody read is one the schema does not have.
 */
function tracked(value, path, objects) {
  if (Array.isArray(value)) return value.map((v, i) => tracked(v, `${path}/${i}`, objects));
  if (value === null || typeof value !== 'object') return value;
  const copy = {};
  for (const [k, v] of Object.entries(value)) copy[k] = tracked(v, `${path}/${k}`, objects);
  const read = new Set();
  objects.push({ path, keys: Object.keys(copy), read });
  return new Proxy(copy, {
    get(target, key, receiver) {
      if (typeof key === 'string') read.add(key);
      return Reflect.get(target, key, receiver);
    },
    has(target, key) {
      if (typeof key === 'string') read.add(key);
      return Reflect.has(target, key);
    },
  });
}

async function validateDoc(doc) {
  const errors = [];
  const { apiVersion, kind } = doc ?? {};
  const where = modelModule(String(apiVersion));
  if (typeof apiVersion !== 'string' || typeof kind !== 'string' || !where) return [`apiVersion and kind must name a Kubernetes resource (got ${apiVersion} ${kind})`];
  let mod;
  try {
    mod = await import(where);
  } catch {
    return [`unknown apiVersion ${apiVersion}`];
  }
  const Model = mod[kind];
  if (typeof Model !== 'function' || Model.apiVersion !== apiVersion || Model.kind !== kind) return [`unknown kind ${kind} in ${apiVersion}`];
  const objects = [];
  const subject = tracked(doc, '', objects);
  try {
    // The model's validate() checks `this`: called on the tracked copy, so the reads are seen.
    Model.prototype.validate.call(subject);
  } catch (err) {
    errors.push(...String(err.message).split(/,\s*(?=data\/)/).map((m) => m.trim()));
  }
  if (errors.length === 0) {
    for (const o of objects) {
      for (const k of o.keys) if (!o.read.has(k)) errors.push(`data${o.path}/${k} is not a field of ${kind} (${apiVersion})`);
    }
  }
  return errors;
}

const out = [];
for (const file of process.argv.slice(2)) {
  const docs = parseAllDocuments(fs.readFileSync(file, 'utf8'));
  for (const [index, d] of docs.entries()) {
    if (d.errors.length) {
      out.push({ file, index, errors: d.errors.map((e) => `YAML: ${e.message}`) });
      continue;
    }
    const doc = d.toJS();
    if (doc === null) continue; // an empty document (a trailing ---)
    out.push({ file, index, apiVersion: doc.apiVersion, kind: doc.kind, name: doc.metadata?.name, errors: await validateDoc(doc) });
  }
}
process.stdout.write(`${JSON.stringify(out)}\n`);
