import pino from 'pino';

/** One root logger; resources take `logger.child({ roomId, recordingId, ... })`. */
export const logger = pino({
  level: process.env.LOG_LEVEL ?? (process.env.NODE_ENV === 'test' ? 'silent' : 'info'),
  redact: ['config.authSecret', 'config.apiToken', '*.authorization'],
  base: undefined,
});

export type Logger = pino.Logger;
