/** Pure parsers of FFmpeg's stderr, tested against captured lines of 4.1 and 5.1. */

export interface FfmpegProgress {
  frame?: number;
  fps?: number;
  /** Media time written so far, in seconds. */
  time?: number;
  /** Encoding speed (media seconds per wall second). */
  speed?: number;
  sizeKiB?: number;
}

/** Parses a `-stats` line: `frame=  120 fps= 30 q=28.0 size=     512kB time=00:00:04.00 bitrate=... speed=1.00x`. */
export function parseProgressLine(line: string): FfmpegProgress | null {
  if (!/^\s*(frame|size)=/.test(line)) return null;
  const p: FfmpegProgress = {};
  const frame = /frame=\s*(\d+)/.exec(line);
  if (frame) p.frame = Number(frame[1]);
  const fps = /fps=\s*([\d.]+)/.exec(line);
  if (fps) p.fps = Number(fps[1]);
  const size = /size=\s*(\d+)\s*[kK]i?B/.exec(line);
  if (size) p.sizeKiB = Number(size[1]);
  const time = /time=\s*(-?)(\d+):(\d+):([\d.]+)/.exec(line);
  if (time) p.time = (time[1] ? -1 : 1) * (Number(time[2]) * 3600 + Number(time[3]) * 60 + Number(time[4]));
  const speed = /speed=\s*([\d.]+)x/.exec(line);
  if (speed) p.speed = Number(speed[1]);
  return p;
}

/** `ffmpeg version 5.1.9-0+deb12u1 ...` → [5, 1]; `N-47683-g0e8eb07980-static` (git builds) → null. */
export function parseVersion(firstLine: string): [number, number] | null {
  const m = /^ffmpeg version n?(\d+)\.(\d+)/.exec(firstLine);
  return m ? [Number(m[1]), Number(m[2])] : null;
}

/** Keeps the last `max` lines of a stream that arrives in arbitrary chunks (\r or \n separated). */
export class LineTail {
  readonly lines: string[] = [];
  #partial = '';
  constructor(private readonly max: number) {}

  /** Returns the complete lines found in this chunk. */
  push(chunk: string): string[] {
    const parts = (this.#partial + chunk).split(/\r\n|\r|\n/);
    this.#partial = parts.pop() ?? '';
    if (this.#partial.length > 4096) this.#partial = this.#partial.slice(-4096);
    const out = parts.filter((l) => l.trim() !== '');
    for (const l of out) {
      // Progress lines are frequent and useless in an error message: keep only the latest one.
      if (parseProgressLine(l) && this.lines.length && parseProgressLine(this.lines[this.lines.length - 1])) {
        this.lines[this.lines.length - 1] = l;
      } else {
        this.lines.push(l);
      }
      if (this.lines.length > this.max) this.lines.shift();
    }
    return out;
  }

  /** The last error-looking lines, for an error message. */
  summary(n = 5): string {
    const meaningful = this.lines.filter((l) => !parseProgressLine(l));
    return meaningful.slice(-n).join(' | ');
  }
}
