import type { Worker } from 'node:worker_threads';
import type { Logger } from '../core/log.ts';
import { readyWithin, restartDelay, startThread, ThreadCalls, threadUrl } from '../core/threads.ts';
import { WriteLock } from '../store/sqlite/write-lock.ts';
import type { FromThread, RelayThreadData, ToRelay } from './thread-messages.ts';

const WORKER_URL = threadUrl(import.meta.url, 'relay-worker');
/** Wakes closer together than this are one (see `wake`). */
const WAKE_EVERY_MS = 50;
/** How long an operation waits for a thread being started again. */
const WAIT_FOR_THREAD_MS = 5_000;

/**
 * The relay in a thread of its own, seen from the delivery thread that starts it. Should it die, the operations
 * in flight fail, the write lock it may have held is freed, and it is started again under the same owner, so it
 * takes its tokens' leases back at once and delivers what they held.
 */
export class RelayThread {
  private worker: Worker | undefined;
  private ready!: Promise<void>;
  private markReady: (() => void) | undefined;
  private readonly calls = new ThreadCalls();
  private up = false;
  private running = false;
  private closing = false;
  private restarts = 0;
  private wokenAt = -Infinity;
  private wakeTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly data: RelayThreadData,
    private readonly log: Logger,
  ) {
    this.ready = new Promise((resolve) => (this.markReady = resolve));
    this.spawn();
  }

  /** Asks the relay to do `op`; resolves with its answer. */
  async op(op: ToRelay['op'], args: unknown[] = []): Promise<unknown> {
    if (op === 'start') this.running = true;
    if (op === 'stop') this.running = false;
    if (!this.up) await readyWithin(this.ready, WAIT_FOR_THREAD_MS, () => new Error('the relay thread is not running'));
    return this.calls.call((id) => this.post({ kind: 'relay', id, op, args }));
  }

  /**
   * New events were committed: the relay delivers them after its linger. Wakes closer together than
   * {@link WAKE_EVERY_MS} become one, sent at the end of that time: none is lost, and a busy stream of commits
   * does not wake the relay's thread hundreds of times a second.
   */
  wake(): void {
    if (!this.up || this.wakeTimer) return;
    const wait = this.wokenAt + WAKE_EVERY_MS - performance.now();
    if (wait <= 0) return this.wakeNow();
    this.wakeTimer = setTimeout(() => {
      this.wakeTimer = undefined;
      if (this.up) this.wakeNow();
    }, wait);
    this.wakeTimer.unref();
  }

  private wakeNow(): void {
    this.wokenAt = performance.now();
    this.post({ kind: 'relay', id: 0, op: 'wake', args: [] });
  }

  /** Stops the relay (its requests in flight get their grace) and the thread. */
  async close(): Promise<void> {
    if (this.up) await this.op('stop').catch(() => undefined);
    this.closing = true;
    clearTimeout(this.wakeTimer);
    await this.worker?.terminate();
  }

  /** Stops the thread at once, as a crash would (a test of what follows; it is started again). */
  crashForTest(): Promise<number> {
    return (this.worker as Worker).terminate();
  }

  private post(message: ToRelay): void {
    this.worker?.postMessage(message);
  }

  private spawn(): void {
    const worker = startThread(WORKER_URL, this.data);
    // Read now: a thread that has exited says -1.
    const threadId = worker.threadId;
    this.worker = worker;
    worker.on('message', (message: FromThread) => {
      switch (message.kind) {
        case 'ready':
          this.up = true;
          this.restarts = 0;
          // A thread started again runs if the one before it did.
          if (this.running) this.post({ kind: 'relay', id: 0, op: 'start', args: [] });
          this.markReady?.();
          this.markReady = undefined;
          return;
        case 'failed':
          this.log.error(`the relay thread cannot open the database: ${message.error.message}`);
          return;
        case 'log':
          this.log[message.level](message.message);
          return;
        case 'answer':
          this.calls.settle(message);
      }
    });
    worker.on('error', (error) => this.log.error('the relay thread failed', error));
    worker.on('exit', () => this.died(worker, threadId));
  }

  private died(worker: Worker, threadId: number): void {
    if (worker !== this.worker) return;
    this.up = false;
    // It may have died inside a transaction: SQLite rolled that back as its connection closed, and the lock goes too.
    new WriteLock(this.data.writeLock).releaseFor(threadId);
    this.calls.failAll(new Error('the relay thread stopped; it is being started again'));
    if (this.closing) return;
    this.log.error('the relay thread stopped; it is being started again');
    if (!this.markReady) this.ready = new Promise((resolve) => (this.markReady = resolve));
    setTimeout(() => {
      if (!this.closing) this.spawn();
    }, restartDelay(this.restarts++)).unref();
  }
}
