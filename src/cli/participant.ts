import { parseArgs } from 'node:util';
import { loadConfig } from '../config';
import { logger } from '../logger';
import { makeSyntheticClip, participantStyle } from '../media/SyntheticClip';
import { resolveFfmpegPath } from '../pipeline/ffmpegPath';
import { WeriftParticipant } from '../rtc/WeriftParticipant';

/**
 * `npm run participant -- --url URL --room ROOM --name NAME [--index i] [--seconds S]
 *   [--codec vp8|h264] [--token JWT] [--loss 0.05] [--size 640x360] [--fps 30]`
 * A headless werift participant publishing participant i's colour and tone (docs/testing.md).
 * Runs S seconds (default: until SIGINT/SIGTERM), then leaves.
 */
async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      url: { type: 'string', default: 'http://127.0.0.1:8080' },
      room: { type: 'string' },
      name: { type: 'string' },
      index: { type: 'string', default: '1' },
      seconds: { type: 'string' },
      codec: { type: 'string', default: 'vp8' },
      token: { type: 'string' },
      loss: { type: 'string' },
      size: { type: 'string', default: '640x360' },
      fps: { type: 'string', default: '30' },
    },
  });
  const index = Number(values.index);
  if (!values.room || !Number.isInteger(index) || index < 1 || (values.codec !== 'vp8' && values.codec !== 'h264')) {
    process.stderr.write('usage: npm run participant -- --url URL --room ROOM --name NAME [--index i>=1] [--seconds S] [--codec vp8|h264]\n');
    process.exit(2);
  }
  const style = participantStyle(index);
  const name = values.name ?? `${style.colour} ${index}`;
  const config = loadConfig({ ...process.env, HOST: '127.0.0.1' });
  const log = logger.child({ cli: 'participant', name });
  const size = /^(\d+)x(\d+)$/.exec(values.size!);
  const fps = Number(values.fps);
  if (!size || !(fps >= 1 && fps <= 60)) {
    process.stderr.write('--size must be WxH and --fps 1..60\n');
    process.exit(2);
  }
  const clip = await makeSyntheticClip(resolveFfmpegPath(config), { index, codec: values.codec as 'vp8' | 'h264', seconds: 2, width: Number(size[1]), height: Number(size[2]), fps }, log);
  const p = new WeriftParticipant({ url: values.url!, roomId: values.room, name, clip, logger: log, token: values.token, outboundLoss: values.loss ? Number(values.loss) : undefined });
  p.on('recording', (r) => log.info({ status: r?.status ?? null }, 'recording state'));
  p.on('notice', (n) => log.warn(n, 'notice'));
  const ack = await p.join();
  if (!ack.ok) {
    log.error({ error: ack.error }, 'join refused');
    await p.close();
    process.exit(1);
  }
  log.info({ participantId: p.participantId, colour: style.colour, toneHz: style.toneHz }, 'joined and publishing');
  const stats = setInterval(() => log.info(p.senderStats(), 'stats'), 5000);
  stats.unref();
  const done = async () => {
    // What reached us from each other participant (source id → frames, keyframes, audio packets):
    // the SFU's side of the meeting, for whoever runs this as a probe.
    log.info({ ...p.senderStats(), received: Object.fromEntries(p.received) }, 'leaving');
    await p.leave();
    process.exit(0);
  };
  process.on('SIGINT', done);
  process.on('SIGTERM', done);
  if (values.seconds) setTimeout(done, Number(values.seconds) * 1000);
}

main().catch((err: unknown) => {
  logger.fatal({ err }, 'participant failed');
  process.exit(1);
});
