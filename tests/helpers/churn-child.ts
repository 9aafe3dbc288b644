/**
 * Run by rtc-sfu.test in its own `node --expose-gc` process: forcing full collections inside the
 * jest process left it slow for the next test file (its participants took 3x as long to connect
 * and one connection failed), so the memory check lives here. Prints one JSON line:
 * { departed, reachable, lateReachesStay }.
 */
import { FakeRecorder } from './rtc-fakeRecorder';
import { participant, sleep, startServer, until } from './rtc-harness';

async function main(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with node --expose-gc');
  const rounds = Number(process.argv[2] ?? 4);
  const server = await startServer(new FakeRecorder());
  const frames = (to: { received: Map<string, { frames: number }> }, from: { participantId: string | null }) => to.received.get(`${from.participantId}:camera`)?.frames ?? 0;
  const stay = await participant(server.url, 'churn', 'Stay', 1);
  await stay.join();
  const room = server.conference.room('churn')!;
  const departed: WeakRef<object>[] = [];
  for (let i = 0; i < rounds; i++) {
    const p = await participant(server.url, 'churn', `P${i}`, 2 + (i % 4), i % 2 ? { codec: 'h264' } : {});
    await p.join();
    await until(() => frames(stay, p) >= 5 && frames(p, stay) >= 5, 15_000, `P${i} and Stay see each other`);
    departed.push(new WeakRef(room.peer(p.participantId!)!));
    await p.leave();
  }
  await until(() => room.participants().length === 1, 5000, 'only Stay left');
  // werift's RTCP loops end on their next tick (≤ 1.5 s); then collect twice, across turns.
  await sleep(2000);
  gc();
  await sleep(100);
  gc();
  const reachable = departed.filter((r) => r.deref() !== undefined).length;
  // and Stay still gets media from someone new
  const late = await participant(server.url, 'churn', 'Late', 6);
  await late.join();
  const lateReachesStay = await until(() => frames(stay, late) >= 5, 15_000, 'Late reaches Stay').then(() => true, () => false);
  await late.close();
  await stay.close();
  await server.close();
  process.stdout.write(`${JSON.stringify({ departed: departed.length, reachable, lateReachesStay })}\n`);
}

main().then(() => process.exit(0), (err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
