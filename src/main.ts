import { ConfigError, loadConfig, redactConfig, type Config } from './config';
import { logger } from './logger';
import { observeRecorder } from './metrics';
import { Recorder } from './pipeline/Recorder';
import { TesseraServer } from './server/TesseraServer';
import { FileStorage } from './storage/FileStorage';
import { S3Storage } from './storage/S3Storage';
import type { Storage } from './storage/Sink';

/**
 * `npm start`: one process serving HTTP, socket.io and WebRTC, recording with FFmpeg children.
 * SIGTERM/SIGINT: not ready, no new joins or recordings, running recordings finished (drained),
 * exit before TESSERA_SHUTDOWN_GRACE_MS (keep it below the pod's terminationGracePeriodSeconds).
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
  await storage.recover?.();
  const recorder = new Recorder({ config, storage, logger });
  await recorder.index.load(); // one read of the storage; per-room counts known before any request
  observeRecorder(recorder);
  recorder.warmUp();
  const server = new TesseraServer({ config, recorder, logger });
  await server.listen();

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, graceMs: config.shutdownGraceMs }, 'draining');
    const deadline = setTimeout(() => {
      logger.error('drain did not finish within the grace period; exiting');
      process.exit(1);
    }, config.shutdownGraceMs);
    deadline.unref();
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
