/**
 * A room records again right after a recording's stop (Record, the room empties, someone joins
 * and records): the first recording's late messages from its worker must not touch the second.
 * The signalling fuzz found the second recording orphaned that way: out of the recorder's active
 * list, so never stopped when its room emptied nor drained, its worker running for good.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../src/config';
import { logger } from '../../src/logger';
import { Recorder } from '../../src/pipeline/Recorder';
import type { RecordingInfo } from '../../src/pipeline/types';
import { FileStorage } from '../../src/storage/FileStorage';
import { sleep, until } from '../helpers/rtc-harness';

jest.setTimeout(90_000);

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `tessera-restart-${process.pid}-`));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('the next recording of a room stays the active one while the previous one finishes', async () => {
  const config = loadConfig({ PORT: '0', RECORDINGS_DIR: path.join(tmp, 'rec'), VIDEO_WIDTH: '320', VIDEO_HEIGHT: '180', VIDEO_FPS: '15' });
  const recorder = new Recorder({ config, storage: new FileStorage(config.recordingsDir), logger });
  recorder.warmUp();
  const events: Array<[string, string]> = [];
  recorder.on('state', (i: RecordingInfo) => events.push([i.id, i.status]));
  try {
    for (let round = 0; round < 3; round++) {
      const a = recorder.start('again', { sources: [] });
      await until(() => a.info().status === 'recording', 20_000, 'the first recording to record');
      await sleep(1500);
      const stopped = a.stop();
      // the moment the server calls it final, the room records again
      await until(() => a.info().status === 'available' || a.info().status === 'failed', 20_000, 'the first to end');
      const b = recorder.start('again', { sources: [] });
      await stopped; // resolves once a's worker has exited: every message of it has arrived
      await sleep(300);
      expect(recorder.activeFor('again')).toBe(b);
      const info = await b.stop();
      expect(['available', 'failed']).toContain(info.status);
      expect(recorder.activeFor('again')).toBeUndefined();
    }
    // each recording ended exactly once
    const finals = events.filter(([, s]) => s === 'available' || s === 'failed').map(([id]) => id);
    expect(new Set(finals).size).toBe(finals.length);
  } finally {
    await recorder.drain();
  }
});
