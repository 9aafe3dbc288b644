import fs from 'node:fs';
import path from 'node:path';

/** A layout preset, validated data from grid-presets/*.json. */
export interface GridPreset {
  name: string;
  kind: 'grid' | 'speaker' | 'screenshare';
  description?: string;
  /** Canvas colour behind and between tiles, #RRGGBB. */
  background: string;
  /** Aspect every tile's video is fitted to (sources are letterboxed to it by their decoder). */
  tileAspect: [number, number];
  /** Pixels of background around each tile's video. */
  margin: number;
  /** Tiles beyond this many are left out (in join order). */
  maxTiles: number;
  strip?: { side: 'bottom' | 'right'; fraction: number };
}

/** grid-presets/ at the top of the project (from compositor/ when run by tsx, from dist/compositor/ when built). */
export const PRESET_DIR =
  process.env.TESSERA_PRESET_DIR ??
  [path.resolve(__dirname, '..', 'grid-presets'), path.resolve(__dirname, '..', '..', 'grid-presets')].find((d) => fs.existsSync(d)) ??
  path.resolve(__dirname, '..', 'grid-presets');

/** Validates one preset object; throws with every problem named. */
export function validatePreset(raw: unknown, source = 'preset'): GridPreset {
  const problems: string[] = [];
  const o = (raw ?? {}) as Record<string, unknown>;
  const isInt = (v: unknown, min: number, max: number) => Number.isInteger(v) && (v as number) >= min && (v as number) <= max;
  if (typeof o.name !== 'string' || !/^[a-z0-9_-]{1,32}$/.test(o.name)) problems.push('name: 1-32 of a-z 0-9 _ -');
  if (!['grid', 'speaker', 'screenshare'].includes(o.kind as string)) problems.push('kind: grid | speaker | screenshare');
  if (typeof o.background !== 'string' || !/^#[0-9a-fA-F]{6}$/.test(o.background)) problems.push('background: #RRGGBB');
  const a = o.tileAspect;
  if (!Array.isArray(a) || a.length !== 2 || !isInt(a[0], 1, 100) || !isInt(a[1], 1, 100)) problems.push('tileAspect: [w, h] integers');
  if (!isInt(o.margin, 0, 64)) problems.push('margin: integer 0-64');
  if (!isInt(o.maxTiles, 1, 64)) problems.push('maxTiles: integer 1-64');
  if (o.kind === 'speaker' || o.kind === 'screenshare') {
    const s = (o.strip ?? {}) as Record<string, unknown>;
    if (!['bottom', 'right'].includes(s.side as string)) problems.push('strip.side: bottom | right');
    if (typeof s.fraction !== 'number' || s.fraction < 0.05 || s.fraction > 0.5) problems.push('strip.fraction: 0.05-0.5');
  }
  if (problems.length) throw new Error(`${source}: ${problems.join('; ')}`);
  return raw as GridPreset;
}

/** Loads and validates every preset in a directory (default: grid-presets/). */
export function loadPresets(dir = PRESET_DIR): Map<string, GridPreset> {
  const out = new Map<string, GridPreset>();
  for (const f of fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort()) {
    const file = path.join(dir, f);
    const p = validatePreset(JSON.parse(fs.readFileSync(file, 'utf8')), file);
    if (out.has(p.name)) throw new Error(`${file}: duplicate preset name ${p.name}`);
    out.set(p.name, p);
  }
  for (const required of ['grid', 'speaker', 'screenshare']) {
    if (!out.has(required)) throw new Error(`${dir}: preset ${required} is missing`);
  }
  return out;
}
