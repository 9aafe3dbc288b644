import { ConfigError, loadConfig, redactConfig, type Config } from './config';
import { logger } from './logger';
import { observeRecorder } from './metrics';
import { Recorder } from './pipeline/Recorder';
import { PodDeletionCost, podCostTargetFromEnv } from './server/podDeletionCost';
import { TesseraServer } from './server/TesseraServer';
import { FileStorage } from './storage/FileStorage';
import { S3Storage } from './storage/S3Storage';
import type { Storage } from './storage/Sink';

/**
 * `npm start`: one process serving HTTP, socket.io and WebRTC, recording with FFmpeg children.
 * SIGTERM/SIGINT: a drain that keeps calls (see `shutdown` below); TESSERA_SHUTDOWN_GRACE_MS stays
 * below the pod's terminationGracePeriodSeconds.
 */
async function main(): Promise<void> {
  let config: Readonly<Config>;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`tessera: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  logger.info({ config: redactConfig(config) }, 'starting');
  const storage: Storage = config.s3.bucket ? new S3Storage(config.s3, { logger }) : new FileStorage(config.recordingsDir);
  if (storage instanceof S3Storage) {
    // What the store supports decides how recordings are stored (tags or metadata, the part
    // limit); an encryption it refuses is a configuration error, never a silent downgrade.
    const caps = await storage.probe();
    if (caps.sseAccepted === false) {
      const why = caps.problems.find((p) => p.startsWith('S3_SSE')) ?? `S3_SSE=${config.s3.sse} refused`;
      process.stderr.write(
        `tessera: the bucket ${config.s3.bucket} refuses the encryption S3_SSE asks for (${why}); recordings are never stored unencrypted instead. Use an encryption the store supports, or unset S3_SSE.\n`,
      );
      await storage.close();
      process.exit(2);
    }
  }
  await storage.recover?.();
  const recorder = new Recorder({ config, storage, logger });
  // One read of the storage, so per-room counts are known before any request. A store that
  // cannot be reached yet (the process then reports unready) is read at the first lookup instead.
  await recorder.index.load().catch((err: unknown) => logger.warn({ err }, 'recordings index not read yet; it is read at the first lookup'));
  observeRecorder(recorder);
  recorder.warmUp();
  const server = new TesseraServer({ config, recorder, logger });
  await server.listen();

  const target = podCostTargetFromEnv();
  const podCost = target ? new PodDeletionCost({ target, load: () => server.conference.load(), intervalMs: config.podCostIntervalMs, logger }) : null;

  // First SIGTERM/SIGINT: drain — unready, no new rooms or recordings, calls and recordings go on
  // until they end by themselves; then exit 0. Near the end of the grace (or at a second signal)
  // the recordings are stopped cleanly and people are sent to another server.
  let stopping = false;
  let finishing = false;
  const finish = (why: string) => {
    if (finishing) return;
    finishing = true;
    logger.info({ why }, 'drain: stopping recordings and closing calls');
    server.finishDrain().catch((err: unknown) => logger.error({ err }, 'finishing the drain failed'));
  };
  const shutdown = (signal: string) => {
    if (stopping) {
      finish(`second ${signal}`);
      return;
    }
    stopping = true;
    podCost?.close();
    const load = server.conference.load();
    logger.info({ signal, graceMs: config.shutdownGraceMs, ...load }, 'draining: calls and recordings go on until they end');
    setTimeout(() => finish('grace nearly over'), config.shutdownGraceMs - config.drainFinishMs).unref();
    setTimeout(() => {
      logger.error('drain did not finish within the grace period; exiting');
      process.exit(1);
    }, config.shutdownGraceMs).unref();
    server
      .drain()
      .then(() => storage.close())
      .then(() => {
        logger.info('drained; bye');
        process.exit(0);
      })
      .catch((err: unknown) => {
        logger.error({ err }, 'drain failed');
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main().catch((err: unknown) => {
  logger.fatal({ err }, 'failed to start');
  process.exit(1);
});
