import type { GridPreset } from './presets';

/** Pure layout math: which rectangle of the canvas each source gets. All values are even (yuv420p). */

export interface Rect {
  x: number;
  y: number;
  w: number;
  h: number;
}

export interface TileInput {
  id: string;
  kind: 'camera' | 'screen';
}

export interface LayoutTile {
  id: string;
  /** The tile's share of the canvas. Slots and fillers together cover the canvas exactly once. */
  slot: Rect;
  /** Where the video goes (absolute), aspect kept, inside the slot with the preset's margin. */
  video: Rect;
}

export interface Layout {
  preset: string;
  width: number;
  height: number;
  tiles: LayoutTile[];
  /** Background rectangles that, with the slots, cover the canvas. */
  fillers: Rect[];
  /** The tiles' video at this fraction of its size, centred where it was (`shrinkTiles`); absent: whole. */
  tileScale?: number;
}

export interface LayoutOptions {
  width: number;
  height: number;
  /** Tiles in join order; the order is kept. */
  tiles: TileInput[];
  /** The active speaker, for the speaker preset (default: the first tile). */
  speakerId?: string;
}

const even = (n: number): number => 2 * Math.floor(n / 2);
/** n+1 even boundaries splitting [0, total) into n nearly equal parts. */
function cuts(total: number, n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i <= n; i++) out.push(i === n ? even(total) : even(Math.round((i * total) / n)));
  return out;
}

function fit(slot: Rect, aspect: number, margin: number): Rect {
  const aw = Math.max(2, slot.w - 2 * margin);
  const ah = Math.max(2, slot.h - 2 * margin);
  let w = Math.min(aw, ah * aspect);
  let h = w / aspect;
  w = Math.max(2, even(w));
  h = Math.max(2, even(h));
  return { x: slot.x + even((slot.w - w) / 2), y: slot.y + even((slot.h - h) / 2), w, h };
}

/**
 * A row (or column) of `k` equal cells of size `cell` along an axis of length `span`, centred:
 * returns the cell intervals and the uncovered intervals at both ends.
 */
function centredRun(start: number, span: number, k: number, cell: number): { cells: [number, number][]; gaps: [number, number][] } {
  const total = Math.min(span, k * cell);
  const offset = start + even((span - total) / 2);
  const cells: [number, number][] = [];
  for (let i = 0; i < k; i++) {
    const a = offset + even(Math.round((i * total) / k));
    const b = i === k - 1 ? offset + even(total) : offset + even(Math.round(((i + 1) * total) / k));
    cells.push([a, b]);
  }
  const gaps: [number, number][] = [];
  if (cells.length && cells[0][0] > start) gaps.push([start, cells[0][0]]);
  const endCell = cells.length ? cells[cells.length - 1][1] : start;
  if (endCell < start + span) gaps.push([endCell, start + span]);
  return { cells, gaps };
}

/** Best-fit grid inside `area`: the column count that gives each tile the largest video. */
export function gridShape(n: number, area: Rect, aspect: number): { cols: number; rows: number } {
  let best = { cols: 1, rows: n, size: -1 };
  for (let cols = 1; cols <= n; cols++) {
    const rows = Math.ceil(n / cols);
    const w = Math.min(area.w / cols, (area.h / rows) * aspect);
    if (w >= best.size) best = { cols, rows, size: w };
  }
  return { cols: best.cols, rows: best.rows };
}

function gridIn(area: Rect, ids: string[], aspect: number, margin: number, out: Layout): void {
  const n = ids.length;
  if (n === 0) {
    out.fillers.push(area);
    return;
  }
  const { cols, rows } = gridShape(n, area, aspect);
  const ys = cuts(area.h, rows).map((y) => y + area.y);
  const cellW = area.w / cols;
  let k = 0;
  for (let r = 0; r < rows; r++) {
    const inRow = Math.min(cols, n - k);
    const run = centredRun(area.x, area.w, inRow, cellW);
    const y = ys[r];
    const h = ys[r + 1] - ys[r];
    for (const [a, b] of run.cells) {
      const slot = { x: a, y, w: b - a, h };
      out.tiles.push({ id: ids[k++], slot, video: fit(slot, aspect, margin) });
    }
    for (const [a, b] of run.gaps) out.fillers.push({ x: a, y, w: b - a, h });
  }
}

/** One strip of equal cells along `side` of `area`; cells as large as fit the strip's thickness. */
function stripIn(area: Rect, ids: string[], side: 'bottom' | 'right', aspect: number, margin: number, out: Layout): void {
  if (ids.length === 0) {
    out.fillers.push(area);
    return;
  }
  if (side === 'bottom') {
    const cell = Math.min(area.w / ids.length, area.h * aspect);
    const run = centredRun(area.x, area.w, ids.length, cell);
    run.cells.forEach(([a, b], i) => {
      const slot = { x: a, y: area.y, w: b - a, h: area.h };
      out.tiles.push({ id: ids[i], slot, video: fit(slot, aspect, margin) });
    });
    for (const [a, b] of run.gaps) out.fillers.push({ x: a, y: area.y, w: b - a, h: area.h });
  } else {
    const cell = Math.min(area.h / ids.length, area.w / aspect);
    const run = centredRun(area.y, area.h, ids.length, cell);
    run.cells.forEach(([a, b], i) => {
      const slot = { x: area.x, y: a, w: area.w, h: b - a };
      out.tiles.push({ id: ids[i], slot, video: fit(slot, aspect, margin) });
    });
    for (const [a, b] of run.gaps) out.fillers.push({ x: area.x, y: a, w: area.w, h: b - a });
  }
}

function split(canvas: Rect, side: 'bottom' | 'right', fraction: number): { stage: Rect; strip: Rect } {
  if (side === 'bottom') {
    const sh = even(canvas.h * fraction);
    return { stage: { ...canvas, h: canvas.h - sh }, strip: { x: canvas.x, y: canvas.y + canvas.h - sh, w: canvas.w, h: sh } };
  }
  const sw = even(canvas.w * fraction);
  return { stage: { ...canvas, w: canvas.w - sw }, strip: { x: canvas.x + canvas.w - sw, y: canvas.y, w: sw, h: canvas.h } };
}

/** The layout of `tiles` on the canvas under `preset`. Pure and deterministic. */
export function computeLayout(preset: GridPreset, opts: LayoutOptions): Layout {
  const { width, height } = opts;
  if (width % 2 || height % 2) throw new Error('canvas size must be even');
  const aspect = preset.tileAspect[0] / preset.tileAspect[1];
  const tiles = opts.tiles.slice(0, preset.maxTiles);
  const canvas: Rect = { x: 0, y: 0, w: width, h: height };
  const out: Layout = { preset: preset.name, width, height, tiles: [], fillers: [] };
  const ids = tiles.map((t) => t.id);

  let stageId: string | undefined;
  if (preset.kind === 'screenshare') stageId = tiles.find((t) => t.kind === 'screen')?.id;
  else if (preset.kind === 'speaker') stageId = ids.includes(opts.speakerId ?? '') ? opts.speakerId : ids[0];

  if (!stageId || !preset.strip || tiles.length === 1) {
    gridIn(canvas, ids, aspect, preset.margin, out);
    return out;
  }
  const { stage, strip } = split(canvas, preset.strip.side, preset.strip.fraction);
  out.tiles.push({ id: stageId, slot: stage, video: fit(stage, aspect, preset.margin) });
  stripIn(strip, ids.filter((id) => id !== stageId), preset.strip.side, aspect, preset.margin, out);
  return out;
}

/**
 * The same layout with every tile's video at `scale` of its size, centred in the rectangle it
 * had; slots and fillers unchanged, so the canvas is covered as before (the rest of each slot is
 * background). A degradation level (StrideController's `smallTiles`): x264 spends far
 * less on a flat, still background than on camera pictures, so the grid at half-size tiles costs
 * it about a quarter less at the economy level (docs/workers.md, day 13). Pure.
 */
export function shrinkTiles(layout: Layout, scale: number): Layout {
  if (!(scale > 0 && scale <= 1)) throw new Error(`tile scale must be in (0, 1]: ${scale}`);
  if (scale === 1) return layout;
  return {
    ...layout,
    tileScale: scale,
    tiles: layout.tiles.map((t) => {
      const w = Math.max(2, even(t.video.w * scale));
      const h = Math.max(2, even(t.video.h * scale));
      return { ...t, video: { x: t.video.x + even((t.video.w - w) / 2), y: t.video.y + even((t.video.h - h) / 2), w, h } };
    }),
  };
}
