import { threadId } from 'node:worker_threads';

/** The lock is free. Holders are named by their thread's id + 1 (the main thread's id is 0). */
const FREE = 0;

/**
 * A write lock the threads of one process share in front of one SQLite file. SQLite's own lock stays the guard
 * (and the only one between processes), but a connection that finds it taken sleeps 1, 2, then 5 ms before it
 * looks again: a group commit waiting behind the relay's claim would wait up to 8 ms for a lock held for one.
 * Here the waiter wakes the moment the holder lets go.
 */
export class WriteLock {
  private readonly cell: Int32Array;
  private readonly me = threadId + 1;
  /** A holder this thread waited out in vain: while it still holds the lock, this thread does not wait for it again. */
  private gaveUpOn = FREE;

  /** Over `buffer` when another thread made the lock, or a new one. */
  constructor(readonly buffer: SharedArrayBuffer = new SharedArrayBuffer(4)) {
    this.cell = new Int32Array(buffer);
  }

  /**
   * Takes the lock, blocking this thread while another holds it, for at most `timeoutMs`. False when the wait
   * ran out: the caller goes on without it, and SQLite's own lock keeps the write safe. A holder that outlasted a
   * wait (a thread that died holding it, until its parent frees it) is not waited for again while it holds it.
   */
  acquire(timeoutMs: number): boolean {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const holder = Atomics.compareExchange(this.cell, 0, FREE, this.me);
      if (holder === FREE) {
        this.gaveUpOn = FREE;
        return true;
      }
      const left = deadline - performance.now();
      if (holder === this.gaveUpOn || left <= 0) {
        this.gaveUpOn = holder;
        return false;
      }
      Atomics.wait(this.cell, 0, holder, left);
    }
  }

  release(): void {
    if (Atomics.compareExchange(this.cell, 0, this.me, FREE) === this.me) Atomics.notify(this.cell, 0);
  }

  /** Frees the lock if the thread `id` held it: that thread died while it wrote. */
  releaseFor(id: number): void {
    if (Atomics.compareExchange(this.cell, 0, id + 1, FREE) === id + 1) Atomics.notify(this.cell, 0);
  }
}
