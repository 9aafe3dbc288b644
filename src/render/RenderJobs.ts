import { fork, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { TesseraError } from '../errors';
import type { Logger } from '../logger';
import type { Manifest, RecordingInfo, RenderInfo } from '../pipeline/types';
import type { MediaRange, Storage } from '../storage/Sink';
import type { RenderJobMessage, RenderChildMessage } from './main';
import type { RenderResult, RenderSettings } from './Renderer';
import { newRender, readManifest, renderRefusal, runStoredRender, saveRender, type RenderRunner } from './renderJob';

/** CPU priority of a render's process and its FFmpeg children: live recordings come first. */
const RENDER_NICE = 10;

/** How to run the render process's entry: compiled JavaScript as it is, else TypeScript through tsx (as the workers). */
function renderEntry(): { file: string; execArgv: string[] } {
  if (__filename.endsWith('.js')) return { file: path.join(__dirname, 'main.js'), execArgv: [] };
  return { file: path.join(__dirname, 'main.ts'), execArgv: ['--import', require.resolve('tsx')] };
}

export interface RenderJobsOptions {
  storage: Storage;
  settings: RenderSettings;
  presets: ReadonlySet<string>;
  ffmpegPath: string;
  logger: Logger;
  /** Renders at once in this process. */
  maxJobs: number;
  /** A recording's `renders` changed (the recordings index keeps them). */
  onChange: (recordingId: string, renders: RenderInfo[]) => void;
}

interface Job {
  recordingId: string;
  render: RenderInfo;
  child: ChildProcess | null;
  cancelled: TesseraError | null;
  done: Promise<RenderInfo>;
}

/**
 * The server's re-renders (POST /api/recordings/:id/renders): at most `maxJobs` at once (one by
 * default: a render takes what CPU is left and is not urgent), each in a process of its own at
 * low priority. The entry is in the recording's manifest (`renders`) from the start, as
 * `rendering`, then `available` or `failed`; the recordings index is told of every change.
 */
export class RenderJobs {
  #o: RenderJobsOptions;
  #jobs = new Map<string, Job>();
  #closed = false;

  constructor(o: RenderJobsOptions) {
    this.#o = o;
  }

  get running(): number {
    return this.#jobs.size;
  }

  /** Starts a render of a finished recording with tracks; resolves to its entry (`rendering`). */
  async start(info: RecordingInfo, layout: string): Promise<RenderInfo> {
    if (!this.#o.presets.has(layout)) throw new TesseraError('REC_ERR_UNKNOWN_LAYOUT', `unknown layout "${layout}"; known: ${[...this.#o.presets].join(', ')}`);
    if (this.#closed) throw new TesseraError('REC_ERR_DRAINING', 'this server is shutting down and starts no renders');
    const manifest = await readManifest(this.#o.storage, info.location);
    if (!manifest) throw new TesseraError('REC_ERR_NOT_FOUND', `recording ${info.id} has no manifest in storage`);
    const refusal = renderRefusal(manifest);
    if (refusal) throw refusal;
    await this.#failStale(manifest);
    if (this.#jobs.size >= this.#o.maxJobs) {
      throw new TesseraError('REC_ERR_CAPACITY', `this server renders ${this.#o.maxJobs} recording${this.#o.maxJobs > 1 ? 's' : ''} at a time and is busy; try again when it is done`);
    }
    // (No await between the capacity check and taking the slot: two requests at once get one.)
    const render = newRender(manifest, layout);
    const job: Job = { recordingId: info.id, render, child: null, cancelled: null, done: Promise.resolve(render) };
    this.#jobs.set(render.location.key, job);
    try {
      this.#o.onChange(info.id, await saveRender(this.#o.storage, info.location, render));
    } catch (err) {
      this.#jobs.delete(render.location.key);
      throw err;
    }
    job.done = runStoredRender({
      storage: this.#o.storage,
      manifest,
      render,
      logger: this.#o.logger,
      run: (r) => this.#runChild(job, r),
      onChange: (renders) => this.#o.onChange(info.id, renders),
    }).finally(() => this.#jobs.delete(render.location.key));
    return render;
  }

  /**
   * Entries left `rendering` by a process that stopped mid-render (a restart, a crash) would stay
   * so for good: one far older than any render of this recording takes (10 minutes plus four
   * times its duration; renders run faster than real time) and not running here is marked failed.
   */
  async #failStale(m: Manifest): Promise<void> {
    const limit = 10 * 60_000 + 4 * (m.durationMs ?? 0);
    const running = new Set(this.#jobs.keys());
    for (const r of m.renders ?? []) {
      if (r.status !== 'rendering' || running.has(r.location.key) || Date.now() - Date.parse(r.createdAt) < limit) continue;
      const failed: RenderInfo = { ...r, status: 'failed', error: { code: 'REC_ERR_INTERRUPTED', message: 'the render was cut short (its process stopped); start it again' } };
      this.#o.onChange(m.id, await saveRender(this.#o.storage, m.location, failed));
    }
  }

  /** The recording is being deleted: its renders in progress stop (their entries go with it). */
  async cancel(recordingId: string): Promise<void> {
    const jobs = [...this.#jobs.values()].filter((j) => j.recordingId === recordingId);
    for (const j of jobs) this.#stop(j, new TesseraError('REC_ERR_NOT_FOUND', 'the recording was deleted'));
    await Promise.all(jobs.map((j) => j.done.catch(() => undefined)));
  }

  /** Shutdown: renders in progress stop and are marked failed (REC_ERR_SHUTDOWN: start them again). */
  async close(): Promise<void> {
    this.#closed = true;
    const jobs = [...this.#jobs.values()];
    for (const j of jobs) this.#stop(j, new TesseraError('REC_ERR_SHUTDOWN', 'the server shut down during the render; start it again'));
    await Promise.all(jobs.map((j) => j.done.catch(() => undefined)));
  }

  #stop(job: Job, why: TesseraError): void {
    job.cancelled ??= why;
    job.child?.kill('SIGKILL');
  }

  /** The composition itself, in a child process (see main.ts). */
  #runChild(job: Job, r: Parameters<RenderRunner>[0]): Promise<RenderResult> {
    if (job.cancelled) return Promise.reject(job.cancelled);
    const trackFiles: Record<string, string> = {};
    for (const t of r.manifest.tracks ?? []) if (t.startedAt && t.packets > 0) trackFiles[t.id] = r.trackFile(t);
    const { file, execArgv } = renderEntry();
    const child = fork(file, [], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'json' });
    job.child = child;
    try {
      if (child.pid) os.setPriority(child.pid, RENDER_NICE);
    } catch {
      // Not permitted here: it runs at normal priority.
    }
    const message: RenderJobMessage = { manifest: r.manifest, layout: r.layout, out: r.out, workDir: r.workDir, trackFiles, settings: this.#o.settings, ffmpegPath: this.#o.ffmpegPath };
    child.send(message);
    return new Promise<RenderResult>((resolve, reject) => {
      let result: RenderChildMessage | null = null;
      child.on('message', (m: RenderChildMessage) => {
        if (m.type !== 'progress') result = m;
      });
      child.on('error', (err) => reject(new TesseraError('REC_ERR_INTERNAL', `the render process failed: ${err.message}`)));
      child.on('exit', (code, signal) => {
        job.child = null;
        if (job.cancelled) reject(job.cancelled);
        else if (result?.type === 'done') resolve(result);
        else if (result?.type === 'error') reject(new TesseraError(result.error.code as never, result.error.message));
        else reject(new TesseraError('REC_ERR_INTERNAL', `the render process ended without a result (code ${code}, signal ${signal})`));
      });
    });
  }

  /** The MP4 of a render of `info` (404 while it is not available). */
  async find(info: RecordingInfo, renderId: string): Promise<RenderInfo> {
    const render = (info.renders ?? []).find((x) => x.id === renderId) ?? ((await readManifest(this.#o.storage, info.location))?.renders ?? []).find((x) => x.id === renderId);
    if (!render) throw new TesseraError('REC_ERR_NOT_FOUND', `recording ${info.id} has no render ${renderId}`);
    if (render.status !== 'available') throw new TesseraError('REC_ERR_NOT_FOUND', `render ${renderId} is ${render.status}, not available`);
    return render;
  }

  openMedia(render: RenderInfo, range?: MediaRange): Promise<{ size: number; stream: NodeJS.ReadableStream } | null> {
    return this.#o.storage.openMedia(render.location, range);
  }

  async presignMedia(render: RenderInfo): Promise<string | null> {
    return this.#o.storage.presignMedia ? this.#o.storage.presignMedia(render.location) : null;
  }
}
