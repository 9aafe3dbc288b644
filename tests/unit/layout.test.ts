import { execFileSync } from 'node:child_process';
import { computeLayout, gridShape, shrinkTiles, type Layout, type Rect } from '../../compositor/layout';
import { buildFilterGraph } from '../../compositor/filterGraph';
import { loadPresets, validatePreset } from '../../compositor/presets';

const presets = loadPresets();
const W = 1280, H = 720;
const cams = (n: number) => Array.from({ length: n }, (_, i) => ({ id: `p${i + 1}`, kind: 'camera' as const }));

/** Slots and fillers must cover every canvas pixel exactly once (xstack leaves nothing undefined). */
function coverage(l: Layout): { holes: number; overlaps: number } {
  const hits = new Uint8Array(l.width * l.height);
  const paint = (r: Rect) => { for (let y = r.y; y < r.y + r.h; y++) for (let x = r.x; x < r.x + r.w; x++) hits[y * l.width + x]++; };
  l.tiles.forEach((t) => paint(t.slot));
  l.fillers.forEach(paint);
  let holes = 0, overlaps = 0;
  for (const h of hits) { if (h === 0) holes++; if (h > 1) overlaps++; }
  return { holes, overlaps };
}

const inside = (a: Rect, b: Rect) => a.x >= b.x && a.y >= b.y && a.x + a.w <= b.x + b.w && a.y + a.h <= b.y + b.h;
const allEven = (r: Rect) => [r.x, r.y, r.w, r.h].every((v) => v % 2 === 0);

describe('grid layout', () => {
  test.each([1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 16])('%i tiles: canvas covered exactly once, even rects, 16:9 video inside its slot, join order kept', (n) => {
    const l = computeLayout(presets.get('grid')!, { width: W, height: H, tiles: cams(n) });
    expect(l.tiles.map((t) => t.id)).toEqual(cams(n).map((c) => c.id));
    expect(coverage(l)).toEqual({ holes: 0, overlaps: 0 });
    for (const t of l.tiles) {
      expect(allEven(t.slot) && allEven(t.video)).toBe(true);
      expect(inside(t.video, t.slot)).toBe(true);
      expect(Math.abs(t.video.w / t.video.h - 16 / 9)).toBeLessThan(0.02);
    }
    for (const f of l.fillers) expect(allEven(f)).toBe(true);
  });

  test('golden cells for 1, 2, 3, 4 and 9', () => {
    const cells = (n: number) => computeLayout(presets.get('grid')!, { width: W, height: H, tiles: cams(n) }).tiles.map((t) => [t.slot.x, t.slot.y, t.slot.w, t.slot.h]);
    expect(cells(1)).toEqual([[0, 0, 1280, 720]]);
    expect(cells(2)).toEqual([[0, 0, 640, 720], [640, 0, 640, 720]]);
    expect(cells(3)).toEqual([[0, 0, 640, 360], [640, 0, 640, 360], [320, 360, 640, 360]]);
    expect(cells(4)).toEqual([[0, 0, 640, 360], [640, 0, 640, 360], [0, 360, 640, 360], [640, 360, 640, 360]]);
    expect(cells(9)[4]).toEqual([426, 240, 426, 240]);
  });

  test('grid shape is the best fit', () => {
    const area = { x: 0, y: 0, w: W, h: H };
    expect([1, 2, 3, 4, 5, 6, 9, 10].map((n) => gridShape(n, area, 16 / 9))).toEqual([
      { cols: 1, rows: 1 }, { cols: 2, rows: 1 }, { cols: 2, rows: 2 }, { cols: 2, rows: 2 }, { cols: 3, rows: 2 }, { cols: 3, rows: 2 }, { cols: 3, rows: 3 }, { cols: 4, rows: 3 },
    ]);
  });

  test('tiles beyond maxTiles are left out; a leaver re-flows the rest in the same order', () => {
    const many = computeLayout(presets.get('grid')!, { width: W, height: H, tiles: cams(20) });
    expect(many.tiles).toHaveLength(16);
    const after = computeLayout(presets.get('grid')!, { width: W, height: H, tiles: cams(4).filter((t) => t.id !== 'p2') });
    expect(after.tiles.map((t) => t.id)).toEqual(['p1', 'p3', 'p4']);
  });
});

describe('speaker and screenshare layouts', () => {
  test('speaker: the speaker takes the stage, others a bottom strip; coverage exact', () => {
    const l = computeLayout(presets.get('speaker')!, { width: W, height: H, tiles: cams(4), speakerId: 'p3' });
    expect(l.tiles[0].id).toBe('p3');
    expect(l.tiles[0].slot).toEqual({ x: 0, y: 0, w: 1280, h: 562 });
    expect(l.tiles.slice(1).map((t) => t.id)).toEqual(['p1', 'p2', 'p4']);
    expect(l.tiles.slice(1).every((t) => t.slot.y === 562)).toBe(true);
    expect(coverage(l)).toEqual({ holes: 0, overlaps: 0 });
  });

  test('screenshare: the screen gets the stage, cameras stack on the right; without a screen it is a grid', () => {
    const tiles = [...cams(3), { id: 's1', kind: 'screen' as const }];
    const l = computeLayout(presets.get('screenshare')!, { width: W, height: H, tiles });
    expect(l.tiles[0]).toMatchObject({ id: 's1', slot: { x: 0, y: 0, w: 1024, h: 720 } });
    expect(l.tiles.slice(1).every((t) => t.slot.x === 1024 && t.slot.w === 256)).toBe(true);
    expect(coverage(l)).toEqual({ holes: 0, overlaps: 0 });
    const none = computeLayout(presets.get('screenshare')!, { width: W, height: H, tiles: cams(4) });
    expect(none.tiles.map((t) => t.slot)).toEqual(computeLayout(presets.get('grid')!, { width: W, height: H, tiles: cams(4) }).tiles.map((t) => t.slot));
  });

  test('odd canvas sizes are refused', () => {
    expect(() => computeLayout(presets.get('grid')!, { width: 1281, height: 720, tiles: cams(1) })).toThrow(/even/);
  });
});

describe('presets', () => {
  test('the shipped presets load and validate', () => {
    expect([...presets.keys()].sort()).toEqual(['grid', 'screenshare', 'speaker']);
  });
  test('a bad preset is refused with every problem named', () => {
    expect(() => validatePreset({ name: 'X!', kind: 'mosaic', background: 'red', tileAspect: [16], margin: -1, maxTiles: 0 }, 'bad.json')).toThrow(
      /bad.json: name.*kind.*background.*tileAspect.*margin.*maxTiles/,
    );
  });
});

describe('small tiles (a degradation level)', () => {
  test.each(['grid', 'speaker', 'screenshare'])('%s: each video at half size, centred where it was; slots, fillers and coverage unchanged', (preset) => {
    const tiles = preset === 'screenshare' ? [...cams(3), { id: 's', kind: 'screen' as const }] : cams(4);
    const whole = computeLayout(presets.get(preset)!, { width: W, height: H, tiles });
    const small = shrinkTiles(whole, 0.5);
    expect(small.tileScale).toBe(0.5);
    expect(small.fillers).toEqual(whole.fillers);
    expect(coverage(small)).toEqual({ holes: 0, overlaps: 0 });
    small.tiles.forEach((t, i) => {
      const w = whole.tiles[i];
      expect(t.slot).toEqual(w.slot);
      expect(allEven(t.video)).toBe(true);
      expect(inside(t.video, w.video)).toBe(true);
      expect(Math.abs(t.video.w - w.video.w / 2)).toBeLessThanOrEqual(2);
      expect(Math.abs(t.video.x + t.video.w / 2 - (w.video.x + w.video.w / 2))).toBeLessThanOrEqual(2);
      expect(Math.abs(t.video.y + t.video.h / 2 - (w.video.y + w.video.h / 2))).toBeLessThanOrEqual(2);
    });
    expect(shrinkTiles(whole, 1)).toBe(whole);
    expect(() => shrinkTiles(whole, 0)).toThrow(/tile scale/);
  });

  test('composed by FFmpeg: each camera in the middle of its cell, the background around it', () => {
    const colours = ['ff0000', '00ff00', '0000ff', 'ffff00'];
    const layout = shrinkTiles(computeLayout(presets.get('grid')!, { width: W, height: H, tiles: cams(4) }), 0.5);
    const { graph, output } = buildFilterGraph(layout, { fps: 30, background: '#181818', inputSize: () => ({ w: 640, h: 360 }) });
    const rgb = execFileSync('node_modules/@ffmpeg-installer/linux-x64/ffmpeg', [
      '-v', 'error', ...colours.flatMap((c) => ['-f', 'lavfi', '-i', `color=c=0x${c}:s=640x360:r=30:d=0.1,format=yuv420p`]),
      '-filter_complex', graph, '-map', output, '-frames:v', '1', '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1',
    ], { maxBuffer: 16 << 20 });
    const at = (x: number, y: number) => [...rgb.subarray((y * W + x) * 3, (y * W + x) * 3 + 3)];
    const near = (a: number[], b: number[]) => a.every((v, i) => Math.abs(v - b[i]) < 40);
    layout.tiles.forEach((t, i) => {
      const want = [0, 2, 4].map((k) => parseInt(colours[i].slice(k, k + 2), 16));
      expect(near(at(t.video.x + t.video.w / 2, t.video.y + t.video.h / 2), want)).toBe(true);
      expect(near(at(t.video.x + 4, t.video.y + 4), want)).toBe(true);
      // Outside the small video but inside where the whole one was: background.
      expect(near(at(t.slot.x + 20, t.slot.y + 20), [0x18, 0x18, 0x18])).toBe(true);
      expect(near(at(t.video.x - 8, t.video.y + t.video.h / 2), [0x18, 0x18, 0x18])).toBe(true);
    });
  });
});
