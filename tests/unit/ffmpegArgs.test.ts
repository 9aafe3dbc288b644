import { buildFilterGraph } from '../../compositor/filterGraph';
import { epochEncoderArgs, audioEncoderArgs, encoderArgs, videoDecoderArgs, nameCardsArgs } from '../../compositor/ffmpegArgs';
import { computeLayout } from '../../compositor/layout';
import { loadPresets } from '../../compositor/presets';

const presets = loadPresets();
const layout = (n: number) => computeLayout(presets.get('grid')!, { width: 1280, height: 720, tiles: Array.from({ length: n }, (_, i) => ({ id: `p${i}`, kind: 'camera' as const })) });

describe('filter graph builder', () => {
  test('golden: 3 tiles (one filler), labels from files', () => {
    const { graph, output } = buildFilterGraph(layout(3), {
      fps: 30,
      background: '#181818',
      inputSize: () => ({ w: 640, h: 360 }),
      labelFile: (i) => `/tmp/l${i}.txt`,
      fontFile: '/f.ttf',
    });
    expect(output).toBe('[out]');
    expect(graph.split(';')).toEqual([
      "[0:v]scale=624:352,drawtext=fontfile='/f.ttf':textfile='/tmp/l0.txt':expansion=none:fontsize=22:fontcolor=white:box=1:boxcolor=black@0.55:boxborderw=6:x=11:y=h-th-11,pad=640:360:8:4:color=0x181818[t0]",
      "[1:v]scale=624:352,drawtext=fontfile='/f.ttf':textfile='/tmp/l1.txt':expansion=none:fontsize=22:fontcolor=white:box=1:boxcolor=black@0.55:boxborderw=6:x=11:y=h-th-11,pad=640:360:8:4:color=0x181818[t1]",
      "[2:v]scale=624:352,drawtext=fontfile='/f.ttf':textfile='/tmp/l2.txt':expansion=none:fontsize=22:fontcolor=white:box=1:boxcolor=black@0.55:boxborderw=6:x=11:y=h-th-11,pad=640:360:8:4:color=0x181818[t2]",
      'color=c=0x181818:s=320x360:r=30,format=yuv420p[f0]',
      'color=c=0x181818:s=320x360:r=30,format=yuv420p[f1]',
      '[t0][t1][t2][f0][f1]xstack=inputs=5:layout=0_0|640_0|320_360|0_360|960_360:shortest=1,format=yuv420p[out]',
    ]);
  });

  test('one full-canvas tile needs no xstack; same-size input needs no scale', () => {
    const l = computeLayout({ ...presets.get('grid')!, margin: 0 }, { width: 640, height: 360, tiles: [{ id: 'a', kind: 'camera' }] });
    expect(buildFilterGraph(l, { fps: 30, background: '#000000', inputSize: () => ({ w: 640, h: 360 }) }).graph).toBe('[0:v]null,format=yuv420p[out]');
  });

  test('paths that could break out of the filter syntax are refused', () => {
    expect(() => buildFilterGraph(layout(1), { fps: 30, background: '#000000', inputSize: () => ({ w: 640, h: 360 }), labelFile: () => "/tmp/a'b", fontFile: '/f.ttf' })).toThrow(/unsafe/);
  });
});

describe('argv builders', () => {
  test('encoder: H.264 yuv420p + AAC, a fragment a second and a keyframe every 2 s, fragmented MP4 to stdout', () => {
    const a = encoderArgs({ width: 1280, height: 720, fps: 30, videoBitrate: 2_500_000, audioBitrate: 96_000, preset: 'superfast', tune: null, x264Params: 'mbtree=1:rc-lookahead=10:bframes=0', fragmentMs: 1000, keyframeMs: 2000 });
    const s = a.join(' ');
    expect(s).toContain('-f rawvideo -pix_fmt yuv420p -s 1280x720 -framerate 30 -thread_queue_size 512 -i pipe:0');
    expect(s).toContain('-f s16le -ar 48000 -ac 1 -channel_layout mono -thread_queue_size 512 -i pipe:3');
    expect(s).toContain('-c:v libx264 -threads 1 -preset superfast -x264-params mbtree=1:rc-lookahead=10:bframes=0 -profile:v high -pix_fmt yuv420p -b:v 2500k -maxrate 2500k -bufsize 5000k -g 60 -keyint_min 60 -sc_threshold 0');
    expect(s).toContain('-c:a aac -b:a 96k');
    expect(s.endsWith('-f mp4 -movflags empty_moov+default_base_moof -frag_duration 1000000 pipe:1')).toBe(true);
    expect(encoderArgs({ width: 640, height: 360, fps: 25, videoBitrate: 1e6, audioBitrate: 64e3, preset: 'ultrafast', tune: 'zerolatency', x264Params: '', fragmentMs: 1000, keyframeMs: 2000 }).join(' ')).toContain('-preset ultrafast -tune zerolatency -x264-params trellis=0 ');
    expect(encoderArgs({ width: 640, height: 360, fps: 25, videoBitrate: 1e6, audioBitrate: 64e3, preset: 'veryfast', tune: null, x264Params: '', fragmentMs: 1000, keyframeMs: 2000 })).not.toContain('-x264-params');
  });

  test('epoch: one raw input pipe per tile from fd 3, composed and encoded to H.264 with delimiters', () => {
    const settings = { width: 1280, height: 720, fps: 30, videoBitrate: 2_500_000, audioBitrate: 96_000, preset: 'superfast', tune: null, x264Params: 'mbtree=1:rc-lookahead=10:bframes=0', fragmentMs: 2000, keyframeMs: 2000 };
    const a = epochEncoderArgs([{ w: 640, h: 360, fps: 30 }, { w: 1280, h: 720, fps: 30 }], 'G', '[out]', settings);
    expect(a.filter((x) => x.startsWith('pipe:'))).toEqual(['pipe:3', 'pipe:4', 'pipe:1']);
    const s = a.join(' ');
    expect(s).toContain('-s 1280x720 -framerate 30 -thread_queue_size 64 -i pipe:4 -filter_complex G -map [out] -vsync passthrough');
    // The same x264 settings as the whole-file encoder (so every epoch's stream splices), plus AUDs.
    expect(s).toContain('-x264-params mbtree=1:rc-lookahead=10:bframes=0:aud=1 -profile:v high -pix_fmt yuv420p -b:v 2500k -maxrate 2500k -bufsize 5000k -g 60 -keyint_min 60 -sc_threshold 0');
    expect(s.endsWith('-f h264 pipe:1')).toBe(true);
    // The economy level: x264's economy analysis after the recording's own options (later keys win).
    const eco = epochEncoderArgs([{ w: 640, h: 360, fps: 30 }], 'G', '[out]', { ...settings, economy: true }).join(' ');
    expect(eco).toContain('-x264-params mbtree=1:rc-lookahead=10:bframes=0:mbtree=0:rc-lookahead=0:subme=0:me=dia:partitions=none:aq-mode=0:no-deblock=1:aud=1 -profile:v high');
    expect(audioEncoderArgs({ audioBitrate: 96_000 }).join(' ')).toContain('-i pipe:0 -c:a aac -b:a 96k -flush_packets 1 -f adts pipe:1');
  });

  test('decoders: VP8 in IVF or H.264 Annex-B in, fixed-size letterboxed raw out', () => {
    // VP8 and H.264 alike in IVF; one thread for the decoder and one for the raw output (a
    // frame-threaded rawvideo encoder holds each picture until the next: docs/workers.md day 22).
    expect(videoDecoderArgs({ w: 640, h: 360 }).join(' ')).toContain('-threads 1 -f ivf -i pipe:0');
    expect(videoDecoderArgs({ w: 640, h: 360 }).join(' ')).toContain('-threads 1 -f rawvideo');
    expect(videoDecoderArgs({ w: 640, h: 360 }).join(' ')).toContain('scale=640:360:force_original_aspect_ratio=decrease,pad=640:360');
  });
});

describe('name cards', () => {
  test('golden: several cards from one process, text k drawn on frame k only', () => {
    const args = nameCardsArgs({ w: 640, h: 360 }, '#3A3F4B', ['/t/a.txt', '/t/b.txt'], '/f.ttf');
    expect(args.slice(args.indexOf('-f'))).toEqual([
      '-f', 'lavfi', '-i', 'color=c=0x3A3F4B:s=640x360:r=1:d=2',
      '-vf',
      "drawtext=fontfile='/f.ttf':textfile='/t/a.txt':expansion=none:fontsize=51:fontcolor=0xDDDDDD:x=(w-tw)/2:y=(h-th)/2:enable='eq(n,0)'," +
        "drawtext=fontfile='/f.ttf':textfile='/t/b.txt':expansion=none:fontsize=51:fontcolor=0xDDDDDD:x=(w-tw)/2:y=(h-th)/2:enable='eq(n,1)'",
      '-frames:v', '2', '-f', 'rawvideo', '-pix_fmt', 'yuv420p', 'pipe:1',
    ]);
  });
});
