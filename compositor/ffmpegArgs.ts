/**
 * Argument vectors of every FFmpeg child. Pure; golden-tested. All children log at `warning`
 * with `-stats`, which FFmpeg then prints straight to stderr: the supervisor's readiness signal.
 */

const COMMON = ['-hide_banner', '-nostats', '-loglevel', 'warning'];
const STATS = ['-stats'];

export interface RawVideoFormat {
  w: number;
  h: number;
  fps: number;
}

/** Raw yuv420p frames on a pipe as an input. */
function rawVideoInput(fmt: RawVideoFormat, pipe: string, queue: number): string[] {
  return ['-f', 'rawvideo', '-pix_fmt', 'yuv420p', '-s', `${fmt.w}x${fmt.h}`, '-framerate', String(fmt.fps), '-thread_queue_size', String(queue), '-i', pipe];
}

/** Any picture into a fixed size, keeping its aspect (bars in `background`), as yuv420p. */
export function letterboxFilter(out: { w: number; h: number }, background = '0x181818'): string {
  return `scale=${out.w}:${out.h}:force_original_aspect_ratio=decrease,pad=${out.w}:${out.h}:(ow-iw)/2:(oh-ih)/2:color=${background},format=yuv420p`;
}

/**
 * A participant's VP8 or H.264 as IVF on a pipe (the codec is the file header's fourcc), decoded
 * inside a direct epoch (src/pipeline/DirectFeed.ts). One decoder thread (as the decoder
 * processes; frame threads would also hold pictures back). `-reinit_filter 0`: a frame of another
 * size (the sender adapting its resolution, or a name card) goes through the graph's scale filter
 * instead of rebuilding the whole graph, which loses the frames held in the frame sync (measured:
 * the picture count then no longer matches the ticks) and pauses ~100 ms. H.264: `low_delay`, as
 * the decoder processes have it: each picture out as soon as its frame is in (browsers send no
 * B-frames).
 */
function codedInput(pipe: string, codec: 'vp8' | 'h264'): string[] {
  return ['-threads', '1', ...(codec === 'h264' ? ['-flags', 'low_delay'] : []), '-reinit_filter', '0', '-probesize', '32', '-analyzeduration', '0', '-thread_queue_size', '64', '-f', 'ivf', '-i', pipe];
}

/**
 * Video decoder for one source: IVF on stdin (VP8, or H.264 access units under the fourcc
 * H264), raw yuv420p frames of a fixed size on stdout, letterboxed to keep the picture's aspect
 * (so a resolution change upstream never changes the raw frame size Node slices on).
 *
 * Each picture comes out as soon as its frame is in (about 2 ms), with both FFmpegs (day 22):
 * - One decoder thread, and one encoder thread for the raw output (`-threads 1` after the
 *   input): Debian's 5.1 gives the rawvideo encoder frame threads, and then hands each picture
 *   on only when the next one is encoded: a frame interval late (67 ms at 15 fps).
 * - H.264 in IVF, not as an Annex-B stream: FFmpeg's Annex-B demuxer finds the end of an access
 *   unit only at the start of the next, another frame interval (the bundled 4.1 held one frame
 *   of H.264 that way, Debian's 5.1 two with the encoder's).
 */
export function videoDecoderArgs(out: { w: number; h: number }, background = '0x181818'): string[] {
  return [
    ...COMMON,
    // No `-fflags nobuffer`: it discards the packets read while probing the input, which is
    // the very first keyframe, leaving the decoder blind until the next one.
    '-flags', 'low_delay', '-probesize', '32', '-analyzeduration', '0',
    '-threads', '1',
    '-f', 'ivf', '-i', 'pipe:0',
    '-an',
    '-vf', letterboxFilter(out, background),
    // passthrough: one output frame per decoded frame (no frame-rate conversion; Node paces).
    '-vsync', 'passthrough',
    '-threads', '1',
    '-f', 'rawvideo', '-pix_fmt', 'yuv420p', 'pipe:1',
  ];
}

export interface EncoderSettings {
  width: number;
  height: number;
  fps: number;
  videoBitrate: number;
  audioBitrate: number;
  preset: string;
  tune: string | null;
  /** Extra x264 options (`key=value:key=value`), e.g. the default mbtree/lookahead set. */
  x264Params: string;
  /**
   * Fragment interval. Fragments are cut on time, not at keyframes: a recording's worker that
   * dies loses the fragment it was making, so this bounds what is lost (see WorkerRecording).
   */
  fragmentMs: number;
  /** Keyframe interval. */
  keyframeMs: number;
  /** Have x264 measure its output's PSNR against its input (the benchmark's psnrDb; costs CPU). */
  psnr?: boolean;
  /** x264's economy analysis on top (ECONOMY_X264): a degradation level, when CPU is short. */
  economy?: boolean;
}

/**
 * x264's economy analysis: the degradation level past the fewest distinct pictures
 * (StrideController), appended after the recording's own options (later keys win). Measured on
 * a 720p grid of four at 10 pictures a second (docs/workers.md, day 7): x264 40 % cheaper, 3 %
 * more bits for the same rate, the same PSNR within 0.1 dB. Its SPS and PPS are byte for byte
 * those of the preset alone, so an epoch using it continues the recording's H.264 track; that
 * holds for the presets in ECONOMY_PRESETS only (on fast and medium, subme=0 caps weighted
 * prediction, which changes the reference count in the SPS). Checked with real x264 in
 * tests/unit/economy-x264.test.ts.
 */
export const ECONOMY_X264 = 'mbtree=0:rc-lookahead=0:subme=0:me=dia:partitions=none:aq-mode=0:no-deblock=1';
export const ECONOMY_PRESETS: readonly string[] = ['ultrafast', 'superfast', 'veryfast', 'faster'];
/** The x264 options an operator may set with the economy level still on (none of them touches what it changes in the headers). */
const ECONOMY_SAFE_PARAMS = new Set(['mbtree', 'rc-lookahead', 'aq-mode', 'aq-strength', 'psy-rd', 'no-deblock', 'deblock', 'me', 'merange', 'partitions', 'trellis']);

/**
 * Whether a recording with these settings may use the economy level: a known preset, and no
 * x264 option of the operator's (TESSERA_X264_PARAMS) that could make the headers differ.
 * `bframes` only at 0 (the default): with B-frames the reference structure is the preset's.
 */
export function economyAllowed(s: { preset: string; x264Params: string }): boolean {
  if (!ECONOMY_PRESETS.includes(s.preset)) return false;
  return s.x264Params.split(':').filter(Boolean).every((kv) => {
    const [k, v] = kv.split('=');
    return ECONOMY_SAFE_PARAMS.has(k) || (k === 'bframes' && Number(v) === 0);
  });
}

/** The encoder settings of a recording (or a re-render of one) from its configuration and picture. */
export function encoderSettingsOf(
  c: { video: { bitrate: number }; audioBitrate: number; x264Preset: string; x264Tune: string | null; x264Params: string; fragmentMs: number; keyframeMs: number; x264Psnr?: boolean },
  v: { width: number; height: number; fps: number },
): EncoderSettings {
  return {
    width: v.width,
    height: v.height,
    fps: v.fps,
    videoBitrate: c.video.bitrate,
    audioBitrate: c.audioBitrate,
    preset: c.x264Preset,
    tune: c.x264Tune,
    x264Params: c.x264Params,
    fragmentMs: c.fragmentMs,
    keyframeMs: c.keyframeMs,
    ...(c.x264Psnr ? { psnr: true } : {}),
  };
}

/**
 * Canvas and audio into one MP4 in one FFmpeg: raw canvas on stdin, mixed 48 kHz mono s16le on
 * pipe:3 → H.264 + AAC in fragmented MP4 on stdout, with the recording's x264 settings. What the
 * benchmark's floor (one bare FFmpeg doing a recording's whole job) encodes with.
 */
export function encoderArgs(s: EncoderSettings): string[] {
  return [
    ...COMMON, ...STATS,
    ...rawVideoInput({ w: s.width, h: s.height, fps: s.fps }, 'pipe:0', 512),
    '-f', 's16le', '-ar', '48000', '-ac', '1', '-channel_layout', 'mono', '-thread_queue_size', '512', '-i', 'pipe:3',
    '-map', '0:v', '-map', '1:a',
    ...x264Video(s, false),
    '-c:a', 'aac', '-b:a', `${Math.round(s.audioBitrate / 1000)}k`,
    '-f', 'mp4', '-movflags', 'empty_moov+default_base_moof', '-frag_duration', String(s.fragmentMs * 1000),
    'pipe:1',
  ];
}

/** The x264 settings of a recording's video, shared by every epoch so their streams splice. */
function x264Video(s: EncoderSettings, aud: boolean): string[] {
  const gop = Math.max(1, Math.round((s.fps * s.keyframeMs) / 1000));
  const kbps = Math.round(s.videoBitrate / 1000);
  const params = [s.x264Params, s.preset === 'ultrafast' ? 'trellis=0' : '', s.economy ? ECONOMY_X264 : '', aud ? 'aud=1' : ''].filter(Boolean).join(':');
  return [
    // One x264 thread: at a recording's sizes a frame takes a few ms, so frame threads buy no
    // speed but cost ~20 MB of frames in flight, a frame of latency each, and their
    // synchronisation (≈ 10 % of x264's CPU at 720p superfast, measured: docs/workers.md).
    '-c:v', 'libx264', '-threads', '1', '-preset', s.preset, ...(s.tune ? ['-tune', s.tune] : []),
    ...(params ? ['-x264-params', params] : []),
    '-profile:v', 'high', '-pix_fmt', 'yuv420p',
    '-b:v', `${kbps}k`, '-maxrate', `${kbps}k`, '-bufsize', `${kbps * 2}k`,
    '-g', String(gop), '-keyint_min', String(gop), '-sc_threshold', '0',
  ];
}

/**
 * One layout epoch: N raw tiles on pipe:3.. → the grid's filter graph → x264 → H.264 Annex B
 * with access unit delimiters on stdout, one access unit per tile frame fed, in order (no frame
 * rate conversion: Node paces). Composition and encoding in one process: the canvas never
 * leaves FFmpeg. Every epoch uses the same x264 settings, so its stream continues the last one's
 * from its first picture (an IDR) with the same parameter sets.
 */
export function epochEncoderArgs(inputs: (RawVideoFormat | 'vp8' | 'h264')[], graph: string, output: string, s: EncoderSettings): string[] {
  // x264's PSNR summary is logged at `info`, when it is asked for.
  const args = s.psnr ? ['-hide_banner', '-nostats', '-loglevel', 'info', ...STATS] : [...COMMON, ...STATS];
  inputs.forEach((fmt, i) => args.push(...(typeof fmt === 'string' ? codedInput(`pipe:${3 + i}`, fmt) : rawVideoInput(fmt, `pipe:${3 + i}`, 64))));
  args.push('-filter_complex', graph, '-map', output, '-vsync', 'passthrough', ...x264Video(s, true), ...(s.psnr ? ['-flags', '+psnr'] : []), '-f', 'h264', 'pipe:1');
  return args;
}

/** The recording's audio: mixed 48 kHz mono s16le on stdin → AAC in ADTS on stdout, per packet. */
export function audioEncoderArgs(s: { audioBitrate: number }): string[] {
  return [
    ...COMMON, ...STATS,
    '-f', 's16le', '-ar', '48000', '-ac', '1', '-channel_layout', 'mono', '-thread_queue_size', '512', '-i', 'pipe:0',
    '-c:a', 'aac', '-b:a', `${Math.round(s.audioBitrate / 1000)}k`, '-flush_packets', '1', '-f', 'adts', 'pipe:1',
  ];
}

/**
 * A name card as a keyframe of a direct epoch's input codec (what the input shows for a tile with
 * no live video): every card a keyframe. H.264: each an IDR carrying its SPS and PPS (a card
 * follows a participant's stream in the same decoder), with access unit delimiters to cut them
 * apart; constrained baseline, as browsers send.
 */
export function codedCardFormat(codec: 'vp8' | 'h264'): string[] {
  return codec === 'vp8'
    ? ['-c:v', 'libvpx', '-deadline', 'good', '-cpu-used', '4', '-b:v', '400k', '-g', '1', '-auto-alt-ref', '0', '-f', 'ivf']
    : ['-pix_fmt', 'yuv420p', '-c:v', 'libx264', '-threads', '1', '-preset', 'ultrafast', '-profile:v', 'baseline', '-g', '1', '-x264-params', 'aud=1:repeat-headers=1', '-f', 'h264'];
}

/**
 * Name cards (the placeholder of a tile whose video has not started or stopped), several in one
 * process: frame k of a flat `background` canvas carries the k-th text (a drawtext enabled on
 * frame k only). One FFmpeg start costs ~0.1 s of CPU with Debian's dynamically linked build;
 * a room of nine starting to record would otherwise start nine of them at its busiest moment.
 */
export function nameCardsArgs(size: { w: number; h: number }, background: string, textFiles: string[], fontFile: string, out: 'raw' | 'vp8' | 'h264' = 'raw'): string[] {
  const bg = `0x${background.replace('#', '')}`;
  const n = textFiles.length;
  const draw = textFiles.map(
    (f, k) => `drawtext=fontfile='${fontFile}':textfile='${f}':expansion=none:fontsize=${Math.round(size.h / 7)}:fontcolor=0xDDDDDD:x=(w-tw)/2:y=(h-th)/2:enable='eq(n,${k})'`,
  );
  const format = out === 'raw' ? ['-f', 'rawvideo', '-pix_fmt', 'yuv420p'] : codedCardFormat(out);
  return [...COMMON, '-f', 'lavfi', '-i', `color=c=${bg}:s=${size.w}x${size.h}:r=1:d=${n}`, '-vf', draw.join(','), '-frames:v', String(n), ...format, 'pipe:1'];
}

/**
 * Decoder of one recorded track for a re-render: the track's file (WebM/Matroska) → raw yuv420p
 * frames of a fixed size on stdout, letterboxed like the live decoders (videoDecoderArgs), one
 * per frame in the file (no frame-rate conversion). `showinfo` logs each frame's timestamp
 * before it is scaled (stderr at `info`): the renderer pairs the n-th line with the n-th frame
 * and places the frame on the recording's clock itself, as the live pacer does with arrivals.
 */
export function trackDecoderArgs(file: string, out: { w: number; h: number }, background = '0x181818'): string[] {
  return [
    '-hide_banner', '-nostats', '-loglevel', 'info',
    '-threads', '1',
    '-i', file,
    '-an', '-sn', '-dn',
    '-vf', `showinfo,${letterboxFilter(out, background)}`,
    '-vsync', 'passthrough',
    '-f', 'rawvideo', '-pix_fmt', 'yuv420p', 'pipe:1',
  ];
}

/** A frame's timestamp in a `showinfo` line (FFmpeg 4.1 and 5.1 alike), in seconds; null for other lines. */
export function parseShowinfoTime(line: string): number | null {
  const m = /\bn:\s*\d+\s+pts:\s*-?\d+\s+pts_time:\s*(-?[\d.]+(?:e-?\d+)?)/.exec(line);
  return m && line.includes('showinfo') ? Number(m[1]) : null;
}

/** A finished MP4 rewritten with its index first (`+faststart`): plays and seeks at once over HTTP. */
export function faststartRemuxArgs(input: string, output: string): string[] {
  return [...COMMON, '-i', input, '-map', '0', '-c', 'copy', '-movflags', '+faststart', '-f', 'mp4', '-y', output];
}
