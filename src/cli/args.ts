/** Minimal `--name value` / `--flag` parser for the CLIs; unknown options are errors. */
export function parseArgs(argv: string[], spec: Record<string, 'string' | 'number' | 'boolean'>): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const m = /^--([a-z][a-z0-9-]*)(?:=(.*))?$/.exec(a);
    if (!m || !(m[1] in spec)) throw new Error(`unknown argument ${a}; expected ${Object.keys(spec).map((k) => `--${k}`).join(' ')}`);
    const kind = spec[m[1]];
    if (kind === 'boolean') {
      out[m[1]] = true;
      continue;
    }
    const v = m[2] ?? argv[++i];
    if (v === undefined) throw new Error(`--${m[1]} needs a value`);
    if (kind === 'number') {
      const n = Number(v);
      if (!Number.isFinite(n) || n < 0) throw new Error(`--${m[1]}: not a number: ${v}`);
      out[m[1]] = n;
    } else out[m[1]] = v;
  }
  return out;
}
