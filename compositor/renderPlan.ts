import { computeLayout, type Layout, type TileInput } from './layout';
import type { GridPreset } from './presets';

/**
 * The plan of a re-render: from a recording's tracks (their places on the recording's clock),
 * which tiles exist when and which layout epoch covers which video ticks. Pure: the same layout
 * math as the live composite (computeLayout), only driven by the tracks' times instead of live
 * joins and leaves.
 */

/** What the plan needs of a manifest's track (TrackInfo). */
export interface PlanTrack {
  id: string;
  sourceId: string;
  name: string;
  kind: 'camera' | 'screen' | 'microphone' | 'screen-audio';
  /** ms on the recording's clock of the track's time 0. */
  start: number;
  /** ms on the recording's clock where its last media ends. */
  end?: number;
  startedAt: string;
  endedAt?: string;
}

/** One tile of the re-render: a source (a camera with its microphone, or a screen share). */
export interface PlanSource {
  id: string;
  name: string;
  kind: 'camera' | 'screen';
  /** Its video track (none: a microphone only, shown as its name card). */
  video?: PlanTrack;
  audio: PlanTrack[];
  /** Ticks [fromTick, toTick) the tile is on the canvas. */
  fromTick: number;
  toTick: number;
}

export interface PlanEpoch {
  fromTick: number;
  toTick: number;
  layout: Layout;
  /** Source per layout tile (in layout order); WAITING_SOURCE when nobody is there. */
  tiles: string[];
}

export const WAITING_SOURCE = '__waiting';

/**
 * The tiles: one per source, on the canvas from its first track's start to its last track's end.
 * A track that was still being written when the recording stopped (its `endedAt` not before the
 * recording's) keeps its tile to the end, as live. Ordered by appearance (the live join order).
 */
export function planSources(o: { tracks: PlanTrack[]; fps: number; totalTicks: number; recordingEndedAt?: string }): PlanSource[] {
  const bySource = new Map<string, PlanTrack[]>();
  for (const t of o.tracks) {
    if (!t.startedAt) continue; // never got media
    const list = bySource.get(t.sourceId) ?? [];
    list.push(t);
    bySource.set(t.sourceId, list);
  }
  const stopAt = o.recordingEndedAt ? Date.parse(o.recordingEndedAt) : NaN;
  const out: PlanSource[] = [];
  for (const [id, tracks] of bySource) {
    const video = tracks.find((t) => t.kind === 'camera' || t.kind === 'screen');
    const kind = tracks.some((t) => t.kind === 'screen' || t.kind === 'screen-audio') ? 'screen' : 'camera';
    const startMs = Math.min(...tracks.map((t) => t.start));
    let endMs = Math.max(...tracks.map((t) => trackEndMs(t)));
    if (tracks.some((t) => !t.endedAt || (Number.isFinite(stopAt) && Date.parse(t.endedAt) >= stopAt))) endMs = Infinity;
    const fromTick = Math.max(0, Math.ceil((startMs * o.fps) / 1000));
    const toTick = Math.min(o.totalTicks, Number.isFinite(endMs) ? Math.ceil((endMs * o.fps) / 1000) : o.totalTicks);
    if (toTick <= fromTick) continue;
    out.push({ id, name: tracks[0].name, kind, video, audio: tracks.filter((t) => t.kind === 'microphone' || t.kind === 'screen-audio'), fromTick, toTick });
  }
  return out.sort((a, b) => a.fromTick - b.fromTick || Math.min(...trackStarts(a)) - Math.min(...trackStarts(b)));
}

function trackStarts(s: PlanSource): number[] {
  return [...(s.video ? [s.video.start] : []), ...s.audio.map((t) => t.start)];
}

/**
 * Where a track stops on the recording's clock: when its source left (its `endedAt`, the moment
 * the live composite dropped the tile), else the end of its last media.
 */
export function trackEndMs(t: PlanTrack): number {
  const media = t.end ?? t.start;
  if (!t.endedAt || !t.startedAt) return media;
  const t0 = Date.parse(t.startedAt) - t.start; // the recording's clock origin, as the track saw it
  return Math.max(media, Date.parse(t.endedAt) - t0);
}

/**
 * The epochs: a new layout wherever the tiles on the canvas change (a join, a leave) or, for the
 * speaker preset, the speaker does; consecutive ticks with the same layout are one epoch.
 * `speakers` are the detector's decisions (ms on the recording's clock, in order).
 */
export function planEpochs(o: {
  preset: GridPreset;
  width: number;
  height: number;
  fps: number;
  totalTicks: number;
  sources: PlanSource[];
  speakers?: { atMs: number; id: string }[];
}): PlanEpoch[] {
  const cuts = new Set<number>([0]);
  for (const s of o.sources) cuts.add(s.fromTick).add(s.toTick);
  const speakerTicks = (o.speakers ?? []).map((s) => ({ tick: Math.ceil((s.atMs * o.fps) / 1000), id: s.id }));
  if (o.preset.kind === 'speaker') for (const s of speakerTicks) cuts.add(s.tick);
  const ticks = [...cuts].filter((t) => t >= 0 && t < o.totalTicks).sort((a, b) => a - b);
  const epochs: PlanEpoch[] = [];
  let speaker: string | undefined;
  let k = 0;
  ticks.forEach((from, i) => {
    const to = i + 1 < ticks.length ? ticks[i + 1] : o.totalTicks;
    while (k < speakerTicks.length && speakerTicks[k].tick <= from) speaker = speakerTicks[k++].id;
    const present = o.sources.filter((s) => s.fromTick <= from && from < s.toTick);
    const tiles: TileInput[] = present.length ? present.map((s) => ({ id: s.id, kind: s.kind })) : [{ id: WAITING_SOURCE, kind: 'camera' }];
    const layout = computeLayout(o.preset, { width: o.width, height: o.height, tiles, speakerId: speaker });
    const prev = epochs[epochs.length - 1];
    if (prev && prev.toTick === from && sameLayout(prev.layout, layout)) prev.toTick = to;
    else epochs.push({ fromTick: from, toTick: to, layout, tiles: layout.tiles.map((t) => t.id) });
  });
  return epochs;
}

function sameLayout(a: Layout, b: Layout): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
