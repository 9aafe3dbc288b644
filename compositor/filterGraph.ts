import type { Layout, Rect } from './layout';

/**
 * Builds the compositor's filter_complex for one layout epoch. Pure.
 *
 * Every tile is one raw yuv420p input (in layout order: input i is tile i). Each is scaled to its
 * video rectangle, labelled with the person's name, padded to its slot; background fillers are
 * `color` sources; `xstack` places slots and fillers, which tile the canvas exactly, so no pixel
 * is left undefined and no full-canvas `overlay` copy is paid (xstack is 1.4–6× cheaper).
 */
export interface FilterOptions {
  fps: number;
  /** #RRGGBB */
  background: string;
  /** Size of the raw frames each tile's input delivers. */
  inputSize: (tileIndex: number) => { w: number; h: number };
  /** Per tile: a file holding the name label (drawtext `textfile`, so names need no escaping). */
  labelFile?: (tileIndex: number) => string | null;
  fontFile?: string | null;
  /**
   * Per tile: filters that come first on its input (a direct epoch's decoded VP8 of any size is
   * letterboxed to `inputSize` here, as the decoder processes do for raw tiles).
   */
  inputFilter?: (tileIndex: number) => string | null;
  /**
   * Make the output one picture per tick (`fps=<fps>:round=down`): for inputs that are not
   * one frame per tick (a direct epoch's, stamped in ticks; see src/pipeline/DirectFeed.ts).
   */
  pace?: boolean;
}

/** Quote a value for a filtergraph option (paths we create contain no quotes). */
function q(s: string): string {
  if (/['\\]/.test(s)) throw new Error(`unsafe filter argument: ${s}`);
  return `'${s}'`;
}

const colour = (hex: string) => `0x${hex.replace('#', '')}`;

export function buildFilterGraph(layout: Layout, opts: FilterOptions): { graph: string; output: string } {
  const chains: string[] = [];
  const slots: { label: string; rect: Rect }[] = [];
  layout.tiles.forEach((tile, i) => {
    const steps: string[] = [];
    const pre = opts.inputFilter?.(i);
    if (pre) steps.push(pre);
    const src = opts.inputSize(i);
    if (src.w !== tile.video.w || src.h !== tile.video.h) steps.push(`scale=${tile.video.w}:${tile.video.h}`);
    const label = opts.labelFile?.(i);
    if (label && opts.fontFile) {
      const size = Math.max(12, Math.round(tile.video.h / 16));
      const pad = Math.max(4, Math.round(size / 2));
      steps.push(
        `drawtext=fontfile=${q(opts.fontFile)}:textfile=${q(label)}:expansion=none:fontsize=${size}` +
          `:fontcolor=white:box=1:boxcolor=black@0.55:boxborderw=${Math.round(size / 4)}:x=${pad}:y=h-th-${pad}`,
      );
    }
    if (tile.video.w !== tile.slot.w || tile.video.h !== tile.slot.h) {
      steps.push(
        `pad=${tile.slot.w}:${tile.slot.h}:${tile.video.x - tile.slot.x}:${tile.video.y - tile.slot.y}:color=${colour(opts.background)}`,
      );
    }
    if (steps.length === 0) steps.push('null');
    chains.push(`[${i}:v]${steps.join(',')}[t${i}]`);
    slots.push({ label: `[t${i}]`, rect: tile.slot });
  });
  layout.fillers.forEach((f, i) => {
    chains.push(`color=c=${colour(opts.background)}:s=${f.w}x${f.h}:r=${opts.fps},format=yuv420p[f${i}]`);
    slots.push({ label: `[f${i}]`, rect: f });
  });
  if (layout.tiles.length === 0) throw new Error('a compositor graph needs at least one tile input');
  const tail = opts.pace ? `fps=${opts.fps}:round=down,format=yuv420p[out]` : 'format=yuv420p[out]';
  if (slots.length === 1) {
    // One tile covering the canvas: no stacking needed.
    chains[chains.length - 1] = chains[chains.length - 1].replace(/\[t0\]$/, `,${tail}`);
    return { graph: chains.join(';'), output: '[out]' };
  }
  // shortest=1: the graph ends when the (finite) piped inputs end, not with the endless fillers.
  const positions = slots.map((s) => `${s.rect.x}_${s.rect.y}`).join('|');
  chains.push(`${slots.map((s) => s.label).join('')}xstack=inputs=${slots.length}:layout=${positions}:shortest=1,${tail}`);
  return { graph: chains.join(';'), output: '[out]' };
}
