import type { Clock } from '../core/clock.ts';
import type { Metrics } from '../core/metrics.ts';
import type { Store } from '../store/store.ts';
import { eventBatch } from '../store/event-batch.ts';
import { featureOfEvent } from '../tokens/features.ts';
import type { DropCount, NewEvent } from '../store/types.ts';

export type { NewEvent } from '../store/types.ts';

/** Default bound: past it page views are dropped first, so an outage cannot fill the disk. */
export const DEFAULT_OUTBOX_MAX = 100_000;
/** How stale this process's idea of the outbox's size may be before it counts again (other processes write too). */
const RECOUNT_EVERY_MS = 1_000;

interface Waiting {
  events: NewEvent[];
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * The way into the durable queue: concurrent callers share one transaction (a group commit), and the bound
 * is kept. What waits, and who delivers it, lives in the store.
 */
export class Outbox {
  private waiting: Waiting[] = [];
  private flushScheduled = false;
  private flushing = false;
  private readonly listeners: Array<() => void> = [];
  /** This process's idea of how many events wait: the last count plus what it wrote since. */
  private estimate: number | undefined;
  private countedAt = -Infinity;
  private trimming: Promise<unknown> | undefined;
  /** How many calls of `add` were queued so far, and how many of them are settled (written, or told they failed). */
  private added = 0;
  private settledUpTo = 0;
  /** Who waits for the calls queued before a point to be settled (see {@link idle}). */
  private idleWaiters: Array<{ upTo: number; resolve: () => void }> = [];

  constructor(
    private readonly store: Store,
    private readonly metrics: Metrics,
    private readonly clock: Clock,
    private readonly maxEntries: number = DEFAULT_OUTBOX_MAX,
  ) {}

  /** Events waiting for GA, counted in the store (all processes). */
  depth(): Promise<number> {
    return this.store.pendingCount();
  }

  /** Calls `listener` after events were written (this process's relay wakes up). */
  onAdded(listener: () => void): void {
    this.listeners.push(listener);
  }

  /**
   * Queues events for the next group commit. Resolves once they are committed (and, on SQLite, synced to
   * disk); a 204 may only be answered after that. Rejects when the store cannot take them.
   */
  add(events: NewEvent[]): Promise<void> {
    if (events.length === 0) return Promise.resolve();
    this.added += 1;
    return new Promise((resolve, reject) => {
      this.waiting.push({ events, resolve, reject });
      this.scheduleFlush();
    });
  }

  /**
   * Resolves once everything added before the call is stored (or its caller was told it failed); what is added
   * afterwards is not waited for, so a steady stream of events cannot hold it up. A stop awaits it before the
   * store closes, so that an event queued just before, say by `trackTask` in the background, is not lost.
   */
  idle(): Promise<void> {
    const upTo = this.added;
    if (this.settledUpTo >= upTo) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push({ upTo, resolve }));
  }

  /** The calls of `add` up to `upTo` are settled: resolves who waited for them. */
  private settle(upTo: number): void {
    this.settledUpTo = upTo;
    if (this.idleWaiters.length === 0) return;
    const done = this.idleWaiters.filter((w) => w.upTo <= upTo);
    this.idleWaiters = this.idleWaiters.filter((w) => w.upTo > upTo);
    for (const w of done) w.resolve();
  }

  /**
   * One commit at a time: what arrives while one is on its way waits for the next, which then takes it all.
   * Under load the batches grow by themselves, and so do the hits sharing one sync.
   */
  private scheduleFlush(): void {
    if (this.flushScheduled || this.flushing || this.waiting.length === 0) return;
    this.flushScheduled = true;
    setImmediate(() => void this.flush());
  }

  private async flush(): Promise<void> {
    this.flushScheduled = false;
    this.flushing = true;
    const batch = this.waiting;
    this.waiting = [];
    // Every call of `add` so far is in this batch or settled already.
    const upTo = this.added;
    let written: Map<string, number>;
    try {
      // As a batch: it crosses to the delivery thread as a few strings and numbers, not as objects.
      const events: NewEvent[] = [];
      for (const w of batch) for (const e of w.events) events.push(e);
      written = await this.store.enqueue(eventBatch(events));
    } catch (error) {
      for (const w of batch) w.reject(error);
      return;
    } finally {
      this.flushing = false;
      this.scheduleFlush();
      // Callbacks run later, as microtasks: a stop waiting for this sees the trim below already begun.
      this.settle(upTo);
    }
    for (const w of batch) w.resolve();
    let total = 0;
    for (const [type, n] of written) {
      this.metrics.eventsQueued.inc({ type }, n);
      total += n;
    }
    this.keepBound(total);
    for (const listener of this.listeners) listener();
  }

  /** Trims when this process's estimate says the bound is passed; recounts at most once a second. */
  private keepBound(written: number): void {
    if (this.trimming) return;
    const now = this.clock();
    const stale = this.estimate === undefined || now - this.countedAt >= RECOUNT_EVERY_MS;
    if (!stale && (this.estimate as number) + written <= this.maxEntries) {
      this.estimate = (this.estimate as number) + written;
      return;
    }
    this.trimming = (async () => {
      if (stale) {
        this.estimate = await this.store.pendingCount();
        this.countedAt = now;
      } else {
        this.estimate = (this.estimate as number) + written;
      }
      if (this.estimate > this.maxEntries) await this.trim();
    })()
      .catch(() => {
        // The store is unavailable: the next write looks again.
        this.estimate = undefined;
      })
      .finally(() => (this.trimming = undefined));
  }

  /** Drops what is over the bound (page views first, oldest first); returns what went. */
  async trim(): Promise<DropCount[]> {
    const drops = await this.store.trimOutbox(this.maxEntries, this.clock());
    this.countDrops(drops);
    this.estimate = Math.min(this.estimate ?? this.maxEntries, this.maxEntries);
    return drops;
  }

  /** Counts dropped events in `/metrics`, by reason and feature. */
  countDrops(drops: DropCount[]): void {
    for (const drop of drops) this.metrics.eventsDropped.inc({ reason: drop.reason, feature: featureOfEvent(drop.event) }, drop.count);
  }

  /** Waits for a trim in progress (tests, shutdown). */
  async settled(): Promise<void> {
    await this.trimming;
  }
}
