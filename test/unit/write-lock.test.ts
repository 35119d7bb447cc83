import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { startThread } from '../../server/core/threads.ts';
import { WriteLock } from '../../server/store/sqlite/write-lock.ts';

const HOLDER = new URL('../fixtures/write-lock-holder.ts', import.meta.url);

/** A thread holding `lock` until it lets go after `holdMs` (or ends holding it). */
async function holder(lock: WriteLock, holdMs: number, release: boolean) {
  const worker = startThread(HOLDER, { buffer: lock.buffer, holdMs, release });
  const [message] = (await once(worker, 'message')) as [string];
  expect(message).toBe('holding');
  return worker;
}

describe('the write lock the threads of one process share', () => {
  it('keeps a second thread out while one holds it, and lets it in the moment the holder lets go', async () => {
    const lock = new WriteLock();
    const worker = await holder(lock, 300, true);
    const done = once(worker, 'message');
    // This thread blocks (the holder's timer runs in its own thread) until the holder lets go.
    expect(lock.acquire(5_000)).toBe(true);
    expect(await done).toEqual(['done']);
    lock.release();
    await worker.terminate();
  });

  it('is freed for the others when its holder died holding it, and only then', async () => {
    const lock = new WriteLock();
    const worker = await holder(lock, 0, false);
    const threadId = worker.threadId;
    await once(worker, 'exit');
    // Held by a thread that is gone: the wait runs out, and says so; the same holder is not waited for again.
    expect(lock.acquire(20)).toBe(false);
    expect(lock.acquire(60_000)).toBe(false);
    // Freeing on behalf of a thread that does not hold it changes nothing.
    lock.releaseFor(threadId + 1000);
    expect(lock.acquire(20)).toBe(false);
    lock.releaseFor(threadId);
    expect(lock.acquire(20)).toBe(true);
    lock.release();
  });
});
