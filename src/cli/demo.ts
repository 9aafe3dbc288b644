import { parseArgs } from './args';
import { loadConfig, ConfigError } from '../config';
import { logger } from '../logger';
import { resolveFfmpegPath } from '../pipeline/ffmpegPath';
import { runSyntheticSession } from '../media/syntheticSession';

const USAGE = 'usage: npm run demo -- --participants N --seconds S --out FILE [--churn] [--layout grid|speaker|screenshare] [--tracks] [--h264 LIST]';

async function main(): Promise<number> {
  let a: Record<string, string | number | boolean>;
  try {
    a = parseArgs(process.argv.slice(2), { participants: 'number', seconds: 'number', out: 'string', churn: 'boolean', layout: 'string', tracks: 'boolean', h264: 'string' });
  } catch (err) {
    console.error(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  const participants = Math.floor(Number(a.participants ?? 4));
  const seconds = Number(a.seconds ?? 10);
  if (participants < 1 || participants > 16 || seconds <= 0 || seconds > 3600 || typeof a.out !== 'string') {
    console.error(`--participants 1-16, --seconds 0-3600 and --out are required\n${USAGE}`);
    return 2;
  }
  // Participants (1-based, comma-separated) whose camera sends H.264, as Safari may; VP8 otherwise.
  const h264 = new Set(String(a.h264 ?? '').split(',').filter(Boolean).map(Number));
  if ([...h264].some((i) => !Number.isInteger(i) || i < 1 || i > participants)) {
    console.error(`--h264 takes participant numbers from 1 to ${participants}, comma-separated\n${USAGE}`);
    return 2;
  }
  const config = loadConfig();
  const ffmpegPath = resolveFfmpegPath(config);
  const log = logger.child({ cli: 'demo' });
  const r = await runSyntheticSession({
    participants,
    seconds,
    out: a.out,
    churn: a.churn === true,
    layout: typeof a.layout === 'string' ? a.layout : undefined,
    tracks: a.tracks === true,
    codec: (i) => (h264.has(i) ? 'h264' : 'vp8'),
    config,
    ffmpegPath,
    logger: log,
  });
  const { info } = r;
  if (info.status !== 'available') {
    console.error(`recording ${info.status}: ${info.error?.code} ${info.error?.message}`);
    return 1;
  }
  console.log(
    JSON.stringify({
      out: a.out,
      status: info.status,
      durationMs: info.durationMs,
      wallMs: Math.round(r.wallMs),
      bytes: info.bytes,
      participants: info.participants.length,
      // ms from the recording's start at which each participant joined and left
      timeline: r.timeline.map((t) => ({ index: t.index, joinedMs: t.joinedMs === undefined ? null : Math.round(t.joinedMs), leftMs: t.leftMs === undefined ? null : Math.round(t.leftMs) })),
      stats: r.recording.stats,
      ...(info.tracks ? { tracks: info.tracks } : {}),
    }),
  );
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err instanceof ConfigError ? err.message : err);
    process.exit(1);
  },
);
