import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from './args';
import { loadConfig, ConfigError } from '../config';
import { logger } from '../logger';
import { loadPresets } from '../../compositor/presets';
import { resolveFfmpegPath } from '../pipeline/ffmpegPath';
import type { Manifest } from '../pipeline/types';
import { FileStorage } from '../storage/FileStorage';
import { S3Storage } from '../storage/S3Storage';
import type { Storage } from '../storage/Sink';
import { renderRecording } from '../render/Renderer';
import { newRender, renderRefusal, runStoredRender, saveRender } from '../render/renderJob';

const USAGE =
  'usage: npm run render -- (--recording ID | --manifest FILE.json) --layout grid|speaker|screenshare [--out FILE.mp4]\n' +
  '  --recording ID   a recording in the configured storage (RECORDINGS_DIR or S3_BUCKET, as the server)\n' +
  '  --manifest FILE  a recording given by its manifest (e.g. a demo\'s output: r.json beside r.mp4)\n' +
  '  --out FILE       write the MP4 there instead of storing it beside the recording and listing it';

/** `<dir>` such that `<dir>/<location.key>` is the MP4 beside this manifest (its key may name a room folder). */
function storageDirOf(manifestFile: string, m: Manifest): string {
  let dir = path.dirname(path.resolve(manifestFile));
  for (const _ of path.dirname(m.location.key).split('/').filter((p) => p !== '.')) dir = path.dirname(dir);
  return dir;
}

async function main(): Promise<number> {
  let a: Record<string, string | number | boolean>;
  try {
    a = parseArgs(process.argv.slice(2), { recording: 'string', manifest: 'string', layout: 'string', out: 'string' });
    if ((typeof a.recording === 'string') === (typeof a.manifest === 'string')) throw new Error('give one of --recording and --manifest');
    if (typeof a.layout !== 'string') throw new Error('--layout is required');
  } catch (err) {
    console.error(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  const config = loadConfig();
  const presets = loadPresets();
  if (!presets.has(a.layout as string)) {
    console.error(`unknown layout "${a.layout}"; known: ${[...presets.keys()].join(', ')}`);
    return 2;
  }
  const ffmpegPath = resolveFfmpegPath(config);
  const log = logger.child({ cli: 'render' });
  let storage: Storage;
  let manifest: Manifest | undefined;
  if (typeof a.manifest === 'string') {
    manifest = JSON.parse(fs.readFileSync(a.manifest, 'utf8')) as Manifest;
    storage = new FileStorage(storageDirOf(a.manifest, manifest));
  } else {
    storage = config.s3.bucket ? new S3Storage(config.s3, { logger: log }) : new FileStorage(config.recordingsDir);
    manifest = ((await storage.listManifests()) as Manifest[]).find((m) => m.id === a.recording);
    if (!manifest) {
      console.error(`no recording ${a.recording} in ${config.s3.bucket ? `s3://${config.s3.bucket}/${config.s3.prefix}` : config.recordingsDir}`);
      await storage.close();
      return 1;
    }
  }
  try {
    const refusal = renderRefusal(manifest);
    if (refusal) {
      console.error(`${refusal.code}: ${refusal.message}`);
      return 1;
    }
    const render = newRender(manifest, a.layout as string);
    const out = typeof a.out === 'string' ? a.out : undefined;
    if (!out) await saveRender(storage, manifest.location, render);
    let lastPct = -1;
    const final = await runStoredRender({
      storage,
      manifest,
      render,
      logger: log,
      outFile: out,
      run: (o) =>
        renderRecording({
          ...o,
          presets,
          config,
          ffmpegPath,
          logger: log,
          onProgress: ({ ticks, totalTicks }) => {
            const pct = Math.floor((100 * ticks) / totalTicks);
            if (pct >= lastPct + 10) console.error(`rendering: ${(lastPct = pct)}%`);
          },
        }),
    });
    console.log(JSON.stringify(final));
    return final.status === 'available' ? 0 : 1;
  } finally {
    await storage.close();
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err instanceof ConfigError ? err.message : err);
    process.exit(1);
  },
);
