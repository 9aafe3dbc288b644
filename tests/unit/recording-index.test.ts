import type { RecordingInfo } from '../../src/pipeline/types';
import { paginate, RecordingIndex } from '../../src/storage/RecordingIndex';

const rec = (id: string, roomId: string, startedAt: string): RecordingInfo => ({ id, roomId, status: 'available', startedAt, layout: 'grid', location: { kind: 'file', key: `${roomId}/${id}.mp4` }, participants: [] });

describe('RecordingIndex', () => {
  test('one scan to load; a miss re-reads the storage at most once per refresh interval; own writes are kept', async () => {
    const stored: object[] = [rec('a', 'r', '2026-01-01T00:00:00Z')];
    let scans = 0;
    let now = 0;
    const index = new RecordingIndex({ listManifests: async () => (scans++, [...stored]) }, { refreshMs: 30_000, now: () => now });
    expect((await index.get('a'))?.id).toBe('a');
    expect(scans).toBe(1);
    // another process writes b: not known yet, and asking again and again does not scan again
    stored.push(rec('b', 'r', '2026-01-02T00:00:00Z'));
    for (let i = 0; i < 5; i++) expect(await index.get('b')).toBeUndefined();
    expect(scans).toBe(1);
    now = 30_001;
    expect((await index.get('b'))?.id).toBe('b');
    expect(scans).toBe(2);
    // this process's own recording is there at once, and survives a refresh that missed it
    index.put(rec('c', 'r', '2026-01-03T00:00:00Z'));
    expect(index.countForRoom('r')).toBe(3);
    now = 70_000;
    await index.get('zzz');
    expect((await index.get('c'))?.id).toBe('c');
    index.remove('a');
    expect(index.countForRoom('r')).toBe(2);
  });

  test('pages: newest first, ties by id, a cursor continues after the last item', () => {
    const list = [rec('a', 'r', '2026-01-01T00:00:00Z'), rec('c', 'r', '2026-01-02T00:00:00Z'), rec('b', 'r', '2026-01-02T00:00:00Z'), rec('d', 'r', '2026-01-03T00:00:00Z')];
    const p1 = paginate(list, { limit: 2 });
    expect(p1.recordings.map((r) => r.id)).toEqual(['d', 'c']);
    const p2 = paginate(list, { limit: 2, cursor: p1.nextCursor });
    expect(p2.recordings.map((r) => r.id)).toEqual(['b', 'a']);
    expect(p2.nextCursor).toBeUndefined();
  });
});
