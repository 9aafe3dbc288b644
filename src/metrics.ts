import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Every metric Tessera exports, in one registry. Names are public (docs/operations.md; alerts and the
 * autoscaler rely on them). Labels are bounded: never room, recording or participant ids.
 */
export const registry = new Registry();
// The process metrics under their standard names (`process_cpu_seconds_total`,
// `process_resident_memory_bytes`, `nodejs_eventloop_lag_seconds`, `nodejs_heap_size_used_bytes`,
// ...), which capacity and Node.js dashboards read as they are. Event-loop delay is sampled
// continuously (`nodejs_eventloop_lag_p99_seconds` etc. cover the time since the previous
// scrape, at 10 ms resolution); `nodejs_eventloop_lag_seconds` is one turn's lag at scrape time.
collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 10 });

export type RecordingResult = 'available' | 'failed';
const RESULTS: readonly RecordingResult[] = ['available', 'failed'];

export const metrics = {
  recordingsActive: new Gauge({
    name: 'tessera_recordings_active',
    help: 'Recordings running in this process (starting, recording or stopping)',
    registers: [registry],
  }),
  recordingsCapacity: new Gauge({
    name: 'tessera_recordings_capacity',
    help: 'Recordings this process accepts at once (MAX_RECORDINGS); 0 while draining',
    registers: [registry],
  }),
  recordingsTotal: new Counter({
    name: 'tessera_recordings_total',
    help: 'Recordings that ended, by result',
    labelNames: ['result'] as const,
    registers: [registry],
  }),
  encoderSpeedRatio: new Gauge({
    name: 'tessera_encoder_speed_ratio',
    help: 'Encoded media seconds per wall-clock second, lowest over the running recordings (1 = real time)',
    registers: [registry],
  }),
  framesDuplicated: new Counter({
    name: 'tessera_frames_duplicated_total',
    help: 'Composite input frames repeated because a source had no new frame on a tick',
    registers: [registry],
  }),
  framesDropped: new Counter({
    name: 'tessera_frames_dropped_total',
    help: 'Frames dropped (decoded frames superseded before a tick, or lost by the pipeline)',
    registers: [registry],
  }),
  distinctFps: new Gauge({
    name: 'tessera_recording_distinct_fps',
    help: 'Distinct pictures a second of the most degraded active recording (below the output fps = composition shed for lack of CPU)',
    registers: [registry],
  }),
  recordingCores: new Gauge({
    name: 'tessera_recordings_cpu_cores',
    help: 'Cores the active recordings\' worker process trees use (measured over the last seconds)',
    registers: [registry],
  }),
  recordingCoresMax: new Gauge({
    name: 'tessera_recording_cpu_cores_max',
    help: 'Cores the costliest active recording\'s worker process tree uses (measured over the last seconds)',
    registers: [registry],
  }),
  recordingsAtLevel: new Gauge({
    name: 'tessera_recordings_at_level',
    help: 'Active recordings by degradation level: the distinct pictures a second each composes now (the output fps, then 1/2, 2/5 and 1/3 of it when CPU is short), its x264 preset (the configured one, then "economy") and its tiles ("full", then "small": half size)',
    labelNames: ['distinct_fps', 'preset', 'tiles'] as const,
    registers: [registry],
  }),
  cpuBudget: new Gauge({
    name: 'tessera_cpu_budget_cores',
    help: 'Cores this process may use (CPU_BUDGET, else its cgroup quota or CPUs); admission keeps recordings within TESSERA_CPU_USABLE of it',
    registers: [registry],
  }),
  cpuCommitted: new Gauge({
    name: 'tessera_cpu_committed_ratio',
    help: 'Share of the cores recordings may take (CPU budget × TESSERA_CPU_USABLE) that admission counts as taken: the running recordings, each at the larger of its expected and its measured cost, and the server process\'s own CPU beyond its headroom: near 1, the next recording is refused with REC_ERR_CAPACITY',
    registers: [registry],
  }),
  costFactor: new Gauge({
    name: 'tessera_recording_cost_factor',
    help: 'What recordings measure here over the configured cost model (TESSERA_RECORDING_CORES_*), learnt from recordings at full quality; 1 = the model holds (it never goes below)',
    registers: [registry],
  }),
  workerRestarts: new Counter({
    name: 'tessera_worker_restarts_total',
    help: 'Recording workers that died and were replaced by one continuing the recording',
    registers: [registry],
  }),
  timeToAvailable: new Histogram({
    name: 'tessera_time_to_available_seconds',
    help: 'Seconds from stop to a playable object in storage',
    buckets: [0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60],
    registers: [registry],
  }),
  uploadBytes: new Counter({
    name: 'tessera_upload_bytes_total',
    help: 'Bytes of MP4 written to storage',
    registers: [registry],
  }),
  uploadErrors: new Counter({
    name: 'tessera_upload_errors_total',
    help: 'Storage writes or uploads that failed (each failed attempt)',
    registers: [registry],
  }),
  s3Capability: new Gauge({
    name: 'tessera_s3_capability',
    help: 'What the S3 store was found to support at start (1) or not (0): write, read, multipart, tagging, encryption (the configured S3_SSE)',
    labelNames: ['capability'] as const,
    registers: [registry],
  }),
  // --- media server (additions) ---
  rtcParticipants: new Gauge({
    name: 'tessera_rtc_participants',
    help: 'Participants connected to rooms of this process',
    registers: [registry],
  }),
  rtcRooms: new Gauge({
    name: 'tessera_rtc_rooms',
    help: 'Rooms with at least one participant in this process',
    registers: [registry],
  }),
  rtcPacketsForwarded: new Counter({
    name: 'tessera_rtc_packets_forwarded_total',
    help: 'RTP packets forwarded to subscribers, by media kind',
    labelNames: ['kind'] as const,
    registers: [registry],
  }),
  rtcKeyframeRequests: new Counter({
    name: 'tessera_rtc_keyframe_requests_total',
    help: 'PLIs sent to publishers, by reason',
    labelNames: ['reason'] as const,
    registers: [registry],
  }),
  rtcFramesDiscarded: new Counter({
    name: 'tessera_rtc_frames_discarded_total',
    help: 'Video frames the recording source discarded (incomplete after loss, or waiting for a keyframe)',
    labelNames: ['reason'] as const,
    registers: [registry],
  }),
  signalErrors: new Counter({
    name: 'tessera_signal_errors_total',
    help: 'socket.io requests refused, by error code',
    labelNames: ['code'] as const,
    registers: [registry],
  }),
};

// Both results exported from 0 at start: a counter series that first appears at 1 shows no
// increase to Prometheus, so a pod's first failed recording would never fire the alert.
for (const result of RESULTS) metrics.recordingsTotal.inc({ result }, 0);

/** The pieces of the Recorder the metrics need (structural, so this module imports no pipeline code). */
interface ObservableRecorder {
  readonly activeCount: number;
  readonly capacity: number;
  observer: {
    recordingEnded?(info: { status: string; endedAt?: string; availableAt?: string; bytes?: number }, stats: { encoderSpeed: number }): void;
    statsDelta?(delta: { framesDuplicated: number; framesDropped: number; workerRestarts: number }): void;
    encoderSpeed?(ratio: number): void;
    distinctFps?(lowest: number): void;
    recordingCores?(cores: number, budget: number): void;
    perRecording?(each: { id: string; roomId: string; cores: number; distinctFps: number; preset: string; tiles?: string }[]): void;
    admission?(committed: number, usableCores: number, factor: number): void;
  };
  on(event: 'state', listener: (info: { status: string }) => void): unknown;
}

/** Counts what the recorder reports into the contract's metrics. */
export function observeRecorder(recorder: ObservableRecorder): void {
  const levelsSeen = new Map<string, number>();
  metrics.recordingsCapacity.set(recorder.capacity);
  metrics.costFactor.set(1);
  metrics.cpuCommitted.set(0);
  const prev = recorder.observer;
  recorder.observer = {
    recordingEnded(info, stats) {
      metrics.recordingsTotal.inc({ result: info.status === 'available' ? 'available' : 'failed' });
      if (info.status === 'available' && info.endedAt && info.availableAt) {
        metrics.timeToAvailable.observe(Math.max(0, Date.parse(info.availableAt) - Date.parse(info.endedAt)) / 1000);
      }
      if (info.bytes) metrics.uploadBytes.inc(info.bytes);
      if (stats.encoderSpeed > 0) metrics.encoderSpeedRatio.set(stats.encoderSpeed);
      prev.recordingEnded?.(info, stats);
    },
    encoderSpeed(ratio) {
      metrics.encoderSpeedRatio.set(ratio);
      prev.encoderSpeed?.(ratio);
    },
    recordingCores(cores, budget) {
      metrics.recordingCores.set(cores);
      metrics.cpuBudget.set(budget);
      prev.recordingCores?.(cores, budget);
    },
    admission(committed, usableCores, factor) {
      metrics.cpuCommitted.set(usableCores > 0 ? committed / usableCores : 0);
      metrics.costFactor.set(factor);
      prev.admission?.(committed, usableCores, factor);
    },
    distinctFps(lowest) {
      metrics.distinctFps.set(lowest);
      prev.distinctFps?.(lowest);
    },
    perRecording(each) {
      // Labels stay bounded (a level, never a recording id): a level no recording is at reads 0.
      metrics.recordingCoresMax.set(Math.max(0, ...each.map((r) => r.cores)));
      for (const level of levelsSeen.keys()) levelsSeen.set(level, 0);
      for (const r of each) {
        if (r.distinctFps <= 0) continue;
        const level = `${r.distinctFps} ${r.preset} ${r.tiles ?? 'full'}`;
        levelsSeen.set(level, (levelsSeen.get(level) ?? 0) + 1);
      }
      for (const [level, n] of levelsSeen) {
        const [fps, preset, tiles] = level.split(' ');
        metrics.recordingsAtLevel.set({ distinct_fps: fps, preset, tiles }, n);
      }
      prev.perRecording?.(each);
    },
    statsDelta(d) {
      if (d.framesDuplicated > 0) metrics.framesDuplicated.inc(d.framesDuplicated);
      if (d.framesDropped > 0) metrics.framesDropped.inc(d.framesDropped);
      if (d.workerRestarts > 0) metrics.workerRestarts.inc(d.workerRestarts);
      prev.statsDelta?.(d);
    },
  };
  recorder.on('state', () => metrics.recordingsActive.set(recorder.activeCount));
}
