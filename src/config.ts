/**
 * Configuration: one defaults object, env overrides, every bad value reported at once, the
 * result frozen. Names of the public variables are public (README "Configuration"); the TESSERA_* ones are
 * tuning knobs with safe defaults.
 */
export interface Config {
  port: number;
  host: string;
  authSecret: string | null;
  publicIp: string | null;
  rtcMinPort: number | null;
  rtcMaxPort: number | null;
  ffmpegPath: string | null;
  recordingsDir: string;
  s3: {
    bucket: string | null;
    region: string;
    endpoint: string | null;
    forcePathStyle: boolean;
    prefix: string;
    sse: 'AES256' | 'aws:kms' | null;
    kmsKeyId: string | null;
    partSizeBytes: number;
    spoolDir: string;
    spoolMaxBytes: number;
    requestTimeoutMs: number;
    orphanMaxAgeMs: number;
    /** Backoff between retries of a failed S3 request: first ceiling, and the cap. */
    retryBaseMs: number;
    retryMaxMs: number;
    /** CreateMultipartUpload at recording start must succeed within this. */
    openTimeoutMs: number;
    /** After stop, the rest of the upload + complete + manifest must succeed within this. */
    finishTimeoutMs: number;
    /** The in-flight manifest (status "recording") is rewritten this often. */
    checkpointMs: number;
    /** recover() completes another process's in-flight upload once its checkpoint is this old. */
    staleAfterMs: number;
    /** Value of the `retention-class` tag on the MP4 and its manifest. */
    retentionClass: string;
    /** Lifetime of presigned media URLs. */
    presignExpiresSec: number;
  };
  maxRecordings: number;
  /** Cores this process may use (null: its cgroup quota, else its CPUs; see pipeline/cpu.ts). */
  cpuBudget: number | null;
  /** Share of the budget recordings may take (the rest: the SFU and headroom). */
  cpuUsable: number;
  /** A recording's cost in cores: base + perSource × its cameras and screens (npm run bench). */
  recordingCores: { base: number; perSource: number };
  /** Correct that model by what this process's recordings measure (pipeline/CostCalibration.ts). */
  recordingCoresLearn: boolean;
  /** The first admin token of API_TOKEN (it signs media URLs); null when unset. */
  apiToken: string | null;
  /** Every REST credential: API_TOKEN's (admin) and API_READ_TOKEN's (read-only), two each at most (rotation). */
  apiCredentials: ReadonlyArray<{ token: string; role: 'admin' | 'read' }>;
  /** Longest a room token may stay valid: its `exp` at most this far ahead. */
  roomTokenMaxTtlSec: number;
  /** Lifetime of a signed media URL (GET /api/recordings/:id/media-url). */
  mediaUrlTtlSec: number;
  /**
   * Who may show the pages in a frame (CSP `frame-ancestors` sources): `'self'` by default, so
   * another site cannot put the meeting page, its Record button and its consent dialog under a
   * decoy of its own; an operator who embeds the pages names their own origins.
   */
  frameAncestors: string[];
  /** Recordings a room may keep in storage; more are refused (REC_ERR_ROOM_LIMIT). */
  maxRecordingsPerRoom: number;
  /** Record every participant's tracks beside the composite unless a start says otherwise (TESSERA_TRACKS). */
  tracks: boolean;
  /** The recordings index re-reads the storage at most this often (other processes' writes). */
  indexRefreshMs: number;
  /** Retention: days a recording is kept (0: until deleted), the most a request may ask, sweep period. */
  retention: { defaultDays: number; maxDays: number; sweepMs: number };
  video: { width: number; height: number; fps: number; bitrate: number };
  x264Preset: string;
  x264Tune: string | null;
  x264Params: string;
  audioBitrate: number;
  /** A tile repeats its last frame this long, then shows the name placeholder. */
  videoTimeoutMs: number;
  /** Shortest fragment of the MP4 (a fragment starts at a keyframe: the next one after this). */
  fragmentMs: number;
  /** Keyframe interval of the MP4. */
  keyframeMs: number;
  /** x264 measures PSNR (TESSERA_X264_PSNR; for the benchmark, it costs CPU). */
  x264Psnr: boolean;
  /**
   * The economy degradation level (TESSERA_X264_ECONOMY): past 13⅓ distinct pictures a second
   * (before 10), x264's economy analysis from the next epoch (docs/workers.md, days 7 and 13).
   * `false` leaves it out of the ladder.
   */
  x264Economy: boolean;
  /**
   * The small-tiles degradation level (TESSERA_SMALL_TILES): past 13⅓ distinct pictures a second
   * (with economy, when that is on) and before 10, every tile at half size in its cell from the
   * next epoch (docs/workers.md, days 13 and 14). `false` leaves it out of the ladder.
   */
  smallTiles: boolean;
  /** How much lower than the server a recording's worker and its FFmpegs run (nice; 0 = the same). */
  workerNice: number;
  /**
   * How many recordings one worker process may run, one after another: a worker whose recording
   * ended `available` with nothing of it left running goes back to the pool warm (its code
   * compiled and optimised), up to this many times. 1 = a new process for every recording.
   */
  workerReuse: number;
  /**
   * Warm worker processes waiting for a recording (TESSERA_WORKER_SPARES): a recording that finds
   * one starts without a process start. 1 covers recordings started one at a time; as many as
   * start together (top-of-the-hour meetings) keeps each of those starts warm too. 0 = none (each
   * recording's worker starts cold, but a worker whose recording ended well still waits warm).
   */
  workerSpares: number;
  /** Epochs decode the participants' VP8 themselves (no decoder processes, no raw tiles through Node). */
  directDecode: boolean;
  /** A compositor/decoder that returns nothing for this long is replaced. */
  stallTimeoutMs: number;
  /** Stop (drain) must finish within this, or the recording fails. */
  stopTimeoutMs: number;
  fontFile: string | null;
  shutdownGraceMs: number;
  drainFinishMs: number;
  podCostIntervalMs: number;
}

/** Shortest AUTH_SECRET and API_TOKEN accepted. */
export const MIN_SECRET_LENGTH = 32;

export const DEFAULTS: Config = {
  port: 8080,
  host: '127.0.0.1',
  authSecret: null,
  publicIp: null,
  rtcMinPort: null,
  rtcMaxPort: null,
  ffmpegPath: null,
  recordingsDir: './recordings',
  s3: {
    bucket: null,
    region: 'us-east-1',
    endpoint: null,
    forcePathStyle: false,
    prefix: 'recordings/',
    sse: null,
    kmsKeyId: null,
    partSizeBytes: 8 * 1024 * 1024,
    spoolDir: './recordings/.spool',
    spoolMaxBytes: 2 * 1024 * 1024 * 1024,
    requestTimeoutMs: 30_000,
    orphanMaxAgeMs: 24 * 3600_000,
    retryBaseMs: 250,
    retryMaxMs: 10_000,
    openTimeoutMs: 10_000,
    finishTimeoutMs: 15_000,
    checkpointMs: 15_000,
    staleAfterMs: 15 * 60_000,
    retentionClass: 'standard',
    presignExpiresSec: 3600,
  },
  maxRecordings: 4,
  cpuBudget: null,
  cpuUsable: 0.8,
  recordingCores: { base: 0.35, perSource: 0.05 },
  recordingCoresLearn: true,
  apiToken: null,
  apiCredentials: [],
  roomTokenMaxTtlSec: 24 * 3600,
  mediaUrlTtlSec: 300,
  frameAncestors: ["'self'"],
  maxRecordingsPerRoom: 500,
  tracks: false,
  indexRefreshMs: 30_000,
  retention: { defaultDays: 0, maxDays: 3650, sweepMs: 3600_000 },
  video: { width: 1280, height: 720, fps: 30, bitrate: 2_500_000 },
  x264Preset: 'superfast',
  x264Tune: null,
  // Measured in docs/x264-presets.md: superfast + macroblock-tree with a short lookahead and no
  // B-frames is as cheap as plain superfast and +1.8 dB SSIM on camera content.
  x264Params: 'mbtree=1:rc-lookahead=10:bframes=0',
  audioBitrate: 96_000,
  videoTimeoutMs: 1000,
  fragmentMs: 2000,
  keyframeMs: 2000,
  x264Psnr: false,
  x264Economy: true,
  smallTiles: true,
  workerNice: 5,
  workerReuse: 20,
  workerSpares: 1,
  directDecode: true,
  stallTimeoutMs: 3000,
  stopTimeoutMs: 20_000,
  fontFile: '/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf',
  // A scale-in waits this long for calls to end by themselves (the pod's
  // terminationGracePeriodSeconds is 3600: this leaves a minute to spare).
  shutdownGraceMs: 3_540_000,
  drainFinishMs: 30_000,
  podCostIntervalMs: 10_000,
};

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

export function loadConfig(env: Env = process.env): Readonly<Config> {
  const problems: string[] = [];
  const str = (name: string): string | null => {
    const v = env[name];
    return v === undefined || v === '' ? null : v;
  };
  const int = (name: string, def: number, min: number, max: number): number => {
    const v = str(name);
    if (v === null) return def;
    if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) {
      problems.push(`${name}=${JSON.stringify(v)}: expected an integer from ${min} to ${max}`);
      return def;
    }
    return Number(v);
  };
  const num = (name: string, def: number, min: number, max: number): number => {
    const v = str(name);
    if (v === null) return def;
    if (!/^\d+(\.\d+)?$/.test(v) || Number(v) < min || Number(v) > max) {
      problems.push(`${name}=${JSON.stringify(v)}: expected a number from ${min} to ${max}`);
      return def;
    }
    return Number(v);
  };
  const optInt = (name: string, min: number, max: number): number | null => {
    return str(name) === null ? null : int(name, 0, min, max);
  };
  const bool = (name: string, def: boolean): boolean => {
    const v = str(name);
    if (v === null) return def;
    if (/^(1|true|yes)$/i.test(v)) return true;
    if (/^(0|false|no)$/i.test(v)) return false;
    problems.push(`${name}=${JSON.stringify(v)}: expected true or false`);
    return def;
  };
  const oneOf = <T extends string>(name: string, values: readonly T[], def: T | null): T | null => {
    const v = str(name);
    if (v === null) return def;
    if (!(values as readonly string[]).includes(v)) {
      problems.push(`${name}=${JSON.stringify(v)}: expected one of ${values.join(', ')}`);
      return def;
    }
    return v as T;
  };

  const d = DEFAULTS;
  const authSecret = str('AUTH_SECRET');
  const host = str('HOST') ?? d.host;
  // Two tokens per role may be set, comma-separated, so a token can be rotated without downtime:
  // add the new one, roll out, remove the old one.
  const tokens = (name: string): string[] => {
    const list = (str(name) ?? '').split(',').map((t) => t.trim()).filter((t) => t.length);
    if (list.length > 2) problems.push(`${name}: at most two tokens (the current and the next), comma-separated`);
    return list.slice(0, 2);
  };
  const adminTokens = tokens('API_TOKEN');
  const readTokens = tokens('API_READ_TOKEN');
  const apiToken = adminTokens[0] ?? null;
  // HS256 keys and bearer tokens shorter than 256 bits can be guessed offline from one token.
  for (const [name, v] of [['AUTH_SECRET', authSecret], ...adminTokens.map((t) => ['API_TOKEN', t]), ...readTokens.map((t) => ['API_READ_TOKEN', t])] as Array<[string, string | null]>) {
    if (v !== null && v.length < MIN_SECRET_LENGTH) problems.push(`${name}: must be at least ${MIN_SECRET_LENGTH} characters (e.g. openssl rand -hex 32)`);
  }
  if (readTokens.length && !adminTokens.length) problems.push('API_READ_TOKEN: needs API_TOKEN too (without it the API has no credential for changes)');
  if (!isLoopbackHost(host)) {
    if (!authSecret) problems.push(`HOST=${JSON.stringify(host)}: listening beyond loopback needs AUTH_SECRET (development mode lets anyone record)`);
    // Room tokens guard socket.io only: without a credential the REST API would let anyone who
    // reaches the port list, download and delete every recording and record any room.
    if (!apiToken) problems.push(`HOST=${JSON.stringify(host)}: listening beyond loopback needs API_TOKEN (the REST API would be open to anyone)`);
  }
  const rtcMinPort = optInt('RTC_MIN_PORT', 1024, 65535);
  const rtcMaxPort = optInt('RTC_MAX_PORT', 1024, 65535);
  if ((rtcMinPort === null) !== (rtcMaxPort === null)) problems.push('RTC_MIN_PORT and RTC_MAX_PORT: set both or neither');
  else if (rtcMinPort !== null && rtcMaxPort !== null && rtcMinPort > rtcMaxPort) problems.push('RTC_MIN_PORT: must not exceed RTC_MAX_PORT');
  const sse = oneOf('S3_SSE', ['AES256', 'aws:kms'] as const, null);
  const kmsKeyId = str('S3_KMS_KEY_ID');
  if (kmsKeyId && sse !== 'aws:kms') problems.push('S3_KMS_KEY_ID: only meaningful with S3_SSE=aws:kms');
  const recordingsDir = str('RECORDINGS_DIR') ?? d.recordingsDir;
  const width = int('VIDEO_WIDTH', d.video.width, 160, 3840);
  const height = int('VIDEO_HEIGHT', d.video.height, 90, 2160);
  if (width % 2 || height % 2) problems.push('VIDEO_WIDTH, VIDEO_HEIGHT: must be even (yuv420p)');
  const publicIp = str('PUBLIC_IP');
  if (publicIp && !/^[0-9a-fA-F.:]+$/.test(publicIp)) problems.push(`PUBLIC_IP=${JSON.stringify(publicIp)}: expected an IP address`);
  const endpoint = str('S3_ENDPOINT');
  if (endpoint && !/^https?:\/\//.test(endpoint)) problems.push(`S3_ENDPOINT=${JSON.stringify(endpoint)}: expected an http(s) URL`);

  const config: Config = {
    port: int('PORT', d.port, 0, 65535),
    host,
    authSecret,
    publicIp,
    rtcMinPort,
    rtcMaxPort,
    ffmpegPath: str('FFMPEG_PATH'),
    recordingsDir,
    s3: {
      bucket: str('S3_BUCKET'),
      region: str('S3_REGION') ?? str('AWS_REGION') ?? d.s3.region,
      endpoint,
      forcePathStyle: bool('S3_FORCE_PATH_STYLE', d.s3.forcePathStyle),
      prefix: str('S3_PREFIX') ?? d.s3.prefix,
      sse,
      kmsKeyId,
      partSizeBytes: int('TESSERA_S3_PART_SIZE', d.s3.partSizeBytes, 5 * 1024 * 1024, 5 * 1024 * 1024 * 1024),
      spoolDir: str('TESSERA_SPOOL_DIR') ?? `${recordingsDir}/.spool`,
      spoolMaxBytes: int('TESSERA_SPOOL_MAX_BYTES', d.s3.spoolMaxBytes, 0, Number.MAX_SAFE_INTEGER),
      requestTimeoutMs: int('TESSERA_S3_REQUEST_TIMEOUT_MS', d.s3.requestTimeoutMs, 100, 600_000),
      orphanMaxAgeMs: int('TESSERA_S3_ORPHAN_MAX_AGE_MS', d.s3.orphanMaxAgeMs, 0, Number.MAX_SAFE_INTEGER),
      retryBaseMs: int('TESSERA_S3_RETRY_BASE_MS', d.s3.retryBaseMs, 1, 60_000),
      retryMaxMs: int('TESSERA_S3_RETRY_MAX_MS', d.s3.retryMaxMs, 1, 600_000),
      openTimeoutMs: int('TESSERA_S3_OPEN_TIMEOUT_MS', d.s3.openTimeoutMs, 100, 600_000),
      finishTimeoutMs: int('TESSERA_S3_FINISH_TIMEOUT_MS', d.s3.finishTimeoutMs, 100, 3600_000),
      checkpointMs: int('TESSERA_S3_CHECKPOINT_MS', d.s3.checkpointMs, 100, 3600_000),
      staleAfterMs: int('TESSERA_S3_STALE_AFTER_MS', d.s3.staleAfterMs, 0, Number.MAX_SAFE_INTEGER),
      retentionClass: str('TESSERA_S3_RETENTION_CLASS') ?? d.s3.retentionClass,
      presignExpiresSec: int('TESSERA_S3_PRESIGN_EXPIRES_SEC', d.s3.presignExpiresSec, 1, 604_800),
    },
    maxRecordings: int('MAX_RECORDINGS', d.maxRecordings, 0, 1000),
    cpuBudget: str('CPU_BUDGET') === null ? null : num('CPU_BUDGET', 1, 0.1, 1024),
    cpuUsable: num('TESSERA_CPU_USABLE', d.cpuUsable, 0.1, 1),
    recordingCores: {
      base: num('TESSERA_RECORDING_CORES_BASE', d.recordingCores.base, 0, 64),
      perSource: num('TESSERA_RECORDING_CORES_PER_SOURCE', d.recordingCores.perSource, 0, 64),
    },
    recordingCoresLearn: bool('TESSERA_RECORDING_CORES_LEARN', d.recordingCoresLearn),
    apiToken,
    apiCredentials: [...adminTokens.map((token) => ({ token, role: 'admin' as const })), ...readTokens.map((token) => ({ token, role: 'read' as const }))],
    roomTokenMaxTtlSec: int('TESSERA_ROOM_TOKEN_MAX_TTL_SEC', d.roomTokenMaxTtlSec, 60, 30 * 24 * 3600),
    mediaUrlTtlSec: int('TESSERA_MEDIA_URL_TTL_SEC', d.mediaUrlTtlSec, 10, 24 * 3600),
    frameAncestors: frameAncestors(str('TESSERA_FRAME_ANCESTORS'), d.frameAncestors, problems),
    maxRecordingsPerRoom: int('TESSERA_MAX_RECORDINGS_PER_ROOM', d.maxRecordingsPerRoom, 1, 1_000_000),
    tracks: bool('TESSERA_TRACKS', d.tracks),
    indexRefreshMs: int('TESSERA_INDEX_REFRESH_MS', d.indexRefreshMs, 0, 24 * 3600_000),
    retention: {
      defaultDays: int('TESSERA_RETENTION_DAYS', d.retention.defaultDays, 0, 36_500),
      maxDays: int('TESSERA_RETENTION_MAX_DAYS', d.retention.maxDays, 1, 36_500),
      sweepMs: int('TESSERA_RETENTION_SWEEP_MS', d.retention.sweepMs, 1000, 7 * 24 * 3600_000),
    },
    video: {
      width,
      height,
      fps: int('VIDEO_FPS', d.video.fps, 1, 60),
      bitrate: int('VIDEO_BITRATE', d.video.bitrate, 100_000, 50_000_000),
    },
    x264Preset: oneOf('TESSERA_X264_PRESET', ['ultrafast', 'superfast', 'veryfast', 'faster', 'fast', 'medium'] as const, d.x264Preset as 'superfast')!,
    x264Tune: oneOf('TESSERA_X264_TUNE', ['zerolatency', 'film', 'animation', 'stillimage'] as const, null),
    x264Params: (() => {
      const v = env.TESSERA_X264_PARAMS;
      if (v === undefined) return d.x264Params;
      if (!/^([a-z0-9-]+=[A-Za-z0-9.,-]+)?(:[a-z0-9-]+=[A-Za-z0-9.,-]+)*$/.test(v)) {
        problems.push(`TESSERA_X264_PARAMS=${JSON.stringify(v)}: expected key=value:key=value`);
        return d.x264Params;
      }
      return v;
    })(),
    audioBitrate: int('TESSERA_AUDIO_BITRATE', d.audioBitrate, 16_000, 512_000),
    videoTimeoutMs: int('TESSERA_VIDEO_TIMEOUT_MS', d.videoTimeoutMs, 100, 60_000),
    fragmentMs: int('TESSERA_FRAGMENT_MS', d.fragmentMs, 500, 2000),
    keyframeMs: int('TESSERA_KEYFRAME_MS', d.keyframeMs, 500, 10_000),
    x264Psnr: bool('TESSERA_X264_PSNR', d.x264Psnr),
    x264Economy: bool('TESSERA_X264_ECONOMY', d.x264Economy),
    smallTiles: bool('TESSERA_SMALL_TILES', d.smallTiles),
    workerNice: int('TESSERA_WORKER_NICE', d.workerNice, 0, 19),
    workerReuse: int('TESSERA_WORKER_REUSE', d.workerReuse, 1, 1000),
    workerSpares: int('TESSERA_WORKER_SPARES', d.workerSpares, 0, 8),
    directDecode: bool('TESSERA_DIRECT_DECODE', d.directDecode),
    stallTimeoutMs: int('TESSERA_STALL_TIMEOUT_MS', d.stallTimeoutMs, 500, 60_000),
    stopTimeoutMs: int('TESSERA_STOP_TIMEOUT_MS', d.stopTimeoutMs, 1000, 600_000),
    fontFile: str('TESSERA_FONT_FILE') ?? d.fontFile,
    shutdownGraceMs: int('TESSERA_SHUTDOWN_GRACE_MS', d.shutdownGraceMs, 1000, 86_400_000),
    drainFinishMs: int('TESSERA_DRAIN_FINISH_MS', d.drainFinishMs, 500, 600_000),
    podCostIntervalMs: int('TESSERA_POD_COST_INTERVAL_MS', d.podCostIntervalMs, 1000, 600_000),
  };
  if (config.drainFinishMs >= config.shutdownGraceMs) problems.push('TESSERA_DRAIN_FINISH_MS must be less than TESSERA_SHUTDOWN_GRACE_MS');
  if (problems.length) throw new ConfigError(problems);
  return deepFreeze(config);
}

/** Whether a listen address only accepts connections from this machine. */
export function isLoopbackHost(host: string): boolean {
  return /^(127\.\d+\.\d+\.\d+|localhost|::1)$/.test(host);
}

/**
 * TESSERA_FRAME_ANCESTORS: space- or comma-separated CSP sources — `'self'`, `'none'` (alone), or
 * origins such as `https://app.example.com` and `https://*.example.com`. Anything else would
 * either break the header or widen it silently, so it stops the process.
 */
function frameAncestors(v: string | null, def: string[], problems: string[]): string[] {
  if (v === null) return def;
  const list = v.split(/[\s,]+/).filter(Boolean);
  const ok = (x: string) => x === "'self'" || /^https?:\/\/(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*(:\d{1,5})?$/.test(x);
  const bad = list.filter((x) => !ok(x) && x !== "'none'");
  if (bad.length || list.length === 0 || list.length > 16 || (list.includes("'none'") && list.length > 1)) {
    problems.push(`TESSERA_FRAME_ANCESTORS=${JSON.stringify(v)}: expected 'none', or up to 16 of 'self' and http(s) origins (https://app.example.com, https://*.example.com)`);
    return def;
  }
  return list;
}

function deepFreeze<T extends object>(o: T): Readonly<T> {
  for (const v of Object.values(o)) if (v && typeof v === 'object') deepFreeze(v as object);
  return Object.freeze(o);
}

/** The config as it may be logged: secrets replaced. */
export function redactConfig(c: Readonly<Config>): object {
  return { ...c, authSecret: c.authSecret ? '[set]' : null, apiToken: c.apiToken ? '[set]' : null, apiCredentials: c.apiCredentials.map((x) => ({ role: x.role, token: '[set]' })) };
}
