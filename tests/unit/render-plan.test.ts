import { computeLayout } from '../../compositor/layout';
import { loadPresets } from '../../compositor/presets';
import { planEpochs, planSources, trackEndMs, WAITING_SOURCE, type PlanTrack } from '../../compositor/renderPlan';
import { parseShowinfoTime } from '../../compositor/ffmpegArgs';
import { nextRenderId, renderRefusal } from '../../src/render/renderJob';
import type { Manifest } from '../../src/pipeline/types';

const presets = loadPresets();
const FPS = 30;
const T0 = Date.parse('2026-12-01T10:00:00.000Z'); // the recording's clock origin
const at = (ms: number) => new Date(T0 + ms).toISOString();
const STOP = at(12_000);

/** A track of `sourceId` from `start` to `end` ms on the recording's clock; `left` = its source left then. */
function track(id: string, sourceId: string, kind: PlanTrack['kind'], start: number, end: number, left?: number): PlanTrack {
  return { id, sourceId, name: `Name ${sourceId}`, kind, start, end, startedAt: at(start), endedAt: left === undefined ? STOP : at(left) };
}

describe('planSources: one tile per source, on the canvas while its tracks are', () => {
  const tracks = [
    track('t1', 'p1', 'microphone', -50, 11_950),
    track('t2', 'p1', 'camera', 20, 11_930),
    track('t3', 'p2', 'camera', 30, 7_930, 8_000),
    track('t4', 'p2', 'microphone', 25, 7_950, 8_000),
    track('t5', 's1', 'screen', 1_540, 11_900),
    track('t6', 'p3', 'microphone', 3_960, 11_940),
  ];
  const sources = planSources({ tracks, fps: FPS, totalTicks: 360, recordingEndedAt: STOP });

  test('in order of appearance, each with its video and audio; a microphone alone is a camera tile without video', () => {
    expect(sources.map((s) => [s.id, s.kind, s.video?.id ?? null, s.audio.map((a) => a.id)])).toEqual([
      ['p1', 'camera', 't2', ['t1']],
      ['p2', 'camera', 't3', ['t4']],
      ['s1', 'screen', 't5', []],
      ['p3', 'camera', null, ['t6']],
    ]);
  });

  test('from the first tick at or after its first media (never before 0) to when it left, or to the end if it was there at the stop', () => {
    expect(sources.map((s) => [s.id, s.fromTick, s.toTick])).toEqual([
      ['p1', 0, 360],
      ['p2', 1, 240], // left at 8000 ms = tick 240 (its last media ended at 7950)
      ['s1', 47, 360], // 1540 ms → tick 46.2 → 47
      ['p3', 119, 360],
    ]);
  });

  test('a leave counts from when the source left, not from its last media (a camera off before leaving shows the card until then)', () => {
    expect(trackEndMs(track('x', 'p9', 'camera', 0, 2_000, 5_000))).toBe(5_000);
    expect(trackEndMs({ ...track('x', 'p9', 'camera', 0, 2_000), endedAt: undefined })).toBe(2_000);
  });

  test('tracks that never got media are left out; a track still open (a crash) lasts to the end', () => {
    const s = planSources({ tracks: [{ ...track('a', 'p1', 'camera', 0, 500), startedAt: '' }, { ...track('b', 'p2', 'camera', 0, 500), endedAt: undefined }], fps: FPS, totalTicks: 90, recordingEndedAt: STOP });
    expect(s.map((x) => [x.id, x.fromTick, x.toTick])).toEqual([['p2', 0, 90]]);
  });
});

describe('planEpochs: a layout epoch per change, with the live layout math', () => {
  const tracks = [track('a', 'p1', 'camera', 0, 11_990), track('b', 'p2', 'camera', 0, 7_990, 8_000), track('c', 'p3', 'camera', 4_000, 11_990)];
  const sources = planSources({ tracks, fps: FPS, totalTicks: 360, recordingEndedAt: STOP });
  const base = { width: 1280, height: 720, fps: FPS, totalTicks: 360, sources };

  test('grid: the join and the leave cut epochs, covering every tick once, each the layout computeLayout gives', () => {
    const e = planEpochs({ ...base, preset: presets.get('grid')! });
    expect(e.map((x) => [x.fromTick, x.toTick, x.tiles])).toEqual([
      [0, 120, ['p1', 'p2']],
      [120, 240, ['p1', 'p2', 'p3']],
      [240, 360, ['p1', 'p3']],
    ]);
    expect(e[1].layout).toEqual(computeLayout(presets.get('grid')!, { width: 1280, height: 720, tiles: ['p1', 'p2', 'p3'].map((id) => ({ id, kind: 'camera' as const })) }));
  });

  test('speaker: the stage follows the detector\'s decisions; other presets ignore them', () => {
    const speakers = [{ atMs: 2_000, id: 'p2' }, { atMs: 9_000, id: 'p3' }];
    const e = planEpochs({ ...base, preset: presets.get('speaker')!, speakers });
    expect(e.map((x) => [x.fromTick, x.toTick, x.tiles[0]])).toEqual([
      [0, 60, 'p1'], // nobody decided yet: the first tile, as live
      [60, 120, 'p2'],
      [120, 240, 'p2'],
      [240, 270, 'p1'], // the speaker left: the first tile again
      [270, 360, 'p3'],
    ]);
    expect(planEpochs({ ...base, preset: presets.get('grid')!, speakers }).length).toBe(3);
  });

  test('nobody on the canvas: the waiting card, as live', () => {
    const late = planSources({ tracks: [track('a', 'p1', 'camera', 1_000, 2_000, 2_000)], fps: FPS, totalTicks: 90, recordingEndedAt: STOP });
    const e = planEpochs({ ...base, sources: late, totalTicks: 90, preset: presets.get('grid')! });
    expect(e.map((x) => [x.fromTick, x.toTick, x.tiles])).toEqual([
      [0, 30, [WAITING_SOURCE]],
      [30, 60, ['p1']],
      [60, 90, [WAITING_SOURCE]],
    ]);
  });
});

test('showinfo timestamps from FFmpeg 4.1 and 5.1 lines; other lines are not frames', () => {
  expect(parseShowinfoTime('[Parsed_showinfo_0 @ 0x27245c00] n:   1 pts:     33 pts_time:0.033   pos:     9907 fmt:yuv420p sar:1/1 s:640x360 i:P iskey:0 type:P checksum:A26BB06B')).toBe(0.033);
  expect(parseShowinfoTime('[Parsed_showinfo_0 @ 0x55b5e2a84900] n: 120 pts:   4000 pts_time:4       duration:     33 duration_time:0.033   fmt:yuv420p')).toBe(4);
  expect(parseShowinfoTime('[Parsed_showinfo_0 @ 0x55b5e2a84900] config in time_base: 1/1000, frame_rate: 30/1')).toBeNull();
  expect(parseShowinfoTime('frame=  120 fps= 30 q=28.0 size=     512kB time=00:00:04.00')).toBeNull();
});

test('render ids count per layout; a recording refuses a render while recording or without tracks', () => {
  expect(nextRenderId({ renders: [] }, 'grid')).toBe('grid-1');
  expect(nextRenderId({ renders: [{ id: 'grid-1' }, { id: 'speaker-1' }, { id: 'grid-2' }] as Manifest['renders'] }, 'grid')).toBe('grid-3');
  const m = { id: 'r', status: 'available', tracks: [{ startedAt: at(0), packets: 10 }] } as unknown as Manifest;
  expect(renderRefusal(m)).toBeNull();
  expect(renderRefusal({ ...m, status: 'recording' })?.code).toBe('REC_ERR_ALREADY_RECORDING');
  expect(renderRefusal({ ...m, tracks: undefined })?.code).toBe('REC_ERR_NO_TRACKS');
  expect(renderRefusal({ ...m, tracks: [{ startedAt: '', packets: 0 }] } as unknown as Manifest)?.code).toBe('REC_ERR_NO_TRACKS');
});
