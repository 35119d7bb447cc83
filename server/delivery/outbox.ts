import { and, asc, count, eq, gt, gte, inArray, lt, lte, sql } from 'drizzle-orm';
import type { Clock } from '../core/clock.ts';
import type { Db } from '../store/database.ts';
import { outbox, tokens, type DeviceFields, type EventParams, type OutboxRow } from '../store/schema.ts';
import { GA_LIMITS } from './measurement-protocol.ts';
import type { Metrics } from '../core/metrics.ts';

/** One event for one token, as the collector or the host hands it in. */
export interface NewEvent {
  tokenId: number;
  name: string;
  params: EventParams;
  /** Page views: GA's device fields (they belong to the whole request, so they group events). */
  device?: DeviceFields;
  /** When it happened, ms since epoch. */
  occurredAt: number;
}

/** Default bound: past it the oldest waiting events are dropped, so an outage cannot fill the disk. */
export const DEFAULT_OUTBOX_MAX = 100_000;

// The columns of `outbox` (db/schema.ts) a new event sets; the rest take their defaults. A new event is due
// from when it happened, so due rows taken in next-attempt order come oldest first, held-back ones included. A token deleted
// between choosing the recipients and this commit gets nothing, rather than failing the whole group commit.
const INSERT_EVENT = `INSERT INTO outbox (token_id, name, params, device, device_key, occurred_at, next_attempt_at)
  SELECT @tokenId, @name, @params, @device, @deviceKey, @occurredAt, @occurredAt WHERE EXISTS (SELECT 1 FROM tokens WHERE id = @tokenId)`;
// Counts per token and hour for the admin; a token deleted while its request was in flight is not counted.
const COUNT_OUTCOME = `INSERT INTO delivery_stats (token_id, hour, delivered, failed)
  SELECT @tokenId, @hour, @delivered, @failed WHERE EXISTS (SELECT 1 FROM tokens WHERE id = @tokenId)
  ON CONFLICT (token_id, hour) DO UPDATE SET delivered = delivered + excluded.delivered, failed = failed + excluded.failed`;
/** Failed events stay visible to the admin this long, then go. */
export const FAILED_RETENTION_MS = 7 * 24 * 3_600_000;
const HOUR_MS = 3_600_000;

interface Waiting {
  events: NewEvent[];
  resolve: () => void;
  reject: (error: unknown) => void;
}

/** The durable queue between the collector and GA: every event for every token waits here until GA took it. */
export class Outbox {
  private waiting: Waiting[] = [];
  private flushScheduled = false;
  private pending: number;
  private listeners: Array<() => void> = [];
  private prepared: ReturnType<typeof prepareQueries> | undefined;

  constructor(
    private readonly db: Db,
    private readonly metrics: Metrics,
    private readonly clock: Clock,
    private readonly maxEntries: number = DEFAULT_OUTBOX_MAX,
  ) {
    this.pending = this.countPending();
    metrics.depth = () => this.pending;
  }

  /** Events waiting for GA. */
  depth(): number {
    return this.pending;
  }

  /** Calls `listener` after events were written (the relay wakes up). */
  onAdded(listener: () => void): void {
    this.listeners.push(listener);
  }

  /**
   * Queues events for the next group commit: concurrent callers share one transaction.
   * Resolves once the events are on disk; a 204 may only be answered after that.
   */
  add(events: NewEvent[]): Promise<void> {
    if (events.length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.waiting.push({ events, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Writes events at once, in one transaction (host calls that need no grouping). */
  addNow(events: NewEvent[]): void {
    if (events.length === 0) return;
    this.write(events);
    this.afterWrite();
  }

  private flush(): void {
    this.flushScheduled = false;
    const batch = this.waiting;
    this.waiting = [];
    try {
      this.write(batch.flatMap((w) => w.events));
    } catch (error) {
      for (const w of batch) w.reject(error);
      return;
    }
    for (const w of batch) w.resolve();
    this.afterWrite();
  }

  private write(events: NewEvent[]): void {
    const { insert } = this.queries();
    // The events of one hit (one per token) share their params and device objects: serialise each once.
    const json = memoByIdentity((value: object) => JSON.stringify(value));
    const key = memoByIdentity(deviceKey);
    const queuedByName = new Map<string, number>();
    let written = 0;
    this.db.$client.transaction(() => {
      for (const e of events) {
        const { changes } = insert.run({
          tokenId: e.tokenId,
          name: e.name,
          params: json(e.params),
          device: e.device ? json(e.device) : null,
          deviceKey: e.device ? key(e.device) : '',
          occurredAt: e.occurredAt,
        });
        if (changes === 0) continue;
        written += 1;
        queuedByName.set(e.name, (queuedByName.get(e.name) ?? 0) + 1);
      }
    })();
    this.pending += written;
    for (const [type, n] of queuedByName) this.metrics.eventsQueued.inc({ type }, n);
  }

  private afterWrite(): void {
    if (this.pending > this.maxEntries) this.trim();
    for (const listener of this.listeners) listener();
  }

  /** Drops the oldest waiting events beyond the bound; returns how many. */
  trim(): number {
    const excess = this.pending - this.maxEntries;
    if (excess <= 0) return 0;
    const result = this.db.$client
      .prepare(
        `DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE status = 'pending' ORDER BY id LIMIT ?)`,
      )
      .run(excess);
    this.pending -= result.changes;
    this.metrics.eventsDropped.inc({ reason: 'outbox-full' }, result.changes);
    return result.changes;
  }

  /** Token ids with events due at `now`. */
  dueTokenIds(now: number): number[] {
    return this.queries().dueTokenIds.all({ now }).map((d) => d.tokenId);
  }

  /** When the earliest waiting event falls due, or undefined when nothing waits. */
  nextDueAt(): number | undefined {
    return this.queries().nextDue.get()?.at ?? undefined;
  }

  /** Up to `limit` due events of one token, those due longest first. */
  due(tokenId: number, now: number, limit: number): OutboxRow[] {
    return this.queries().dueRows.all({ tokenId, now, limit });
  }

  /** GA took these: they leave the outbox, and the token's delivery counts go up. */
  delivered(tokenId: number, ids: number[]): void {
    if (ids.length === 0) return;
    const now = this.clock();
    const { deleteIds, countOutcome, noteDelivered } = this.queries();
    let removed = 0;
    this.db.$client.transaction(() => {
      removed = deleteIds.run({ ids: JSON.stringify(ids) }).changes;
      this.pending -= removed;
      countOutcome.run({ tokenId, hour: hourOf(now), delivered: removed, failed: 0 });
      noteDelivered.run({ tokenId, now });
    })();
    this.metrics.eventsDelivered.inc({ token: String(tokenId) }, removed);
  }

  /**
   * The statements of the hot paths (queueing a hit, taking and clearing due events), prepared once:
   * building the same SQL with the query builder for every call was most of their cost.
   */
  private queries(): ReturnType<typeof prepareQueries> {
    this.prepared ??= prepareQueries(this.db);
    return this.prepared;
  }

  /** A passing failure (network, timeout, 429, 5xx): try again at `nextAttemptAt`. */
  retryLater(tokenId: number, ids: number[], nextAttemptAt: number, error: string): void {
    if (ids.length === 0) return;
    this.db
      .update(outbox)
      .set({ attempts: sql`${outbox.attempts} + 1`, nextAttemptAt, lastError: error })
      .where(inArray(outbox.id, ids))
      .run();
    this.noteTokenError(tokenId, error);
    this.metrics.eventsRetried.inc({ token: String(tokenId) }, ids.length);
  }

  /** GA refused these for good (or they grew too old): kept as failed, visible to the admin. */
  failed(tokenId: number, ids: number[], error: string): void {
    if (ids.length === 0) return;
    const now = this.clock();
    let changed = 0;
    this.db.transaction((tx) => {
      changed = tx
        .update(outbox)
        .set({ status: 'failed', attempts: sql`${outbox.attempts} + 1`, lastError: error })
        .where(and(inArray(outbox.id, ids), eq(outbox.status, 'pending')))
        .run().changes;
      this.pending -= changed;
      this.queries().countOutcome.run({ tokenId, hour: hourOf(now), delivered: 0, failed: changed });
    });
    this.noteTokenError(tokenId, error);
    this.metrics.eventsFailed.inc({ token: String(tokenId) }, changed);
  }

  /**
   * Makes a token's waiting events due at `at`: `'not-before'` holds back those due sooner (GA is failing for
   * it), `'not-after'` brings forward those due later (the hold was lifted). Rows already right are left
   * alone, so a held-back backlog is not rewritten on every call.
   */
  retimeToken(tokenId: number, at: number, bound: 'not-before' | 'not-after'): void {
    const wrong = bound === 'not-before' ? lt(outbox.nextAttemptAt, at) : gt(outbox.nextAttemptAt, at);
    this.db
      .update(outbox)
      .set({ nextAttemptAt: at })
      .where(and(eq(outbox.status, 'pending'), eq(outbox.tokenId, tokenId), wrong))
      .run();
  }

  /** Marks waiting events that happened before `cutoff` as failed: GA no longer accepts them. */
  expire(cutoff: number): number {
    const changed = this.db
      .update(outbox)
      .set({ status: 'failed', lastError: "older than GA's 72-hour limit" })
      .where(and(eq(outbox.status, 'pending'), lt(outbox.occurredAt, cutoff)))
      .run().changes;
    this.pending -= changed;
    if (changed > 0) this.metrics.eventsDropped.inc({ reason: 'expired' }, changed);
    return changed;
  }

  /** Drops waiting events that will not be sent (e.g. their feature was switched off on the token). */
  discard(ids: number[], reason: string): number {
    if (ids.length === 0) return 0;
    const removed = this.db.delete(outbox).where(and(inArray(outbox.id, ids), eq(outbox.status, 'pending'))).run().changes;
    this.pending -= removed;
    this.metrics.eventsDropped.inc({ reason }, removed);
    return removed;
  }

  /**
   * Keeps failed events from growing without bound: those older than {@link FAILED_RETENTION_MS} go,
   * and at most as many as the outbox bound stay. Returns how many went.
   */
  pruneFailed(now: number): number {
    const old = this.db
      .delete(outbox)
      .where(and(eq(outbox.status, 'failed'), lt(outbox.occurredAt, now - FAILED_RETENTION_MS)))
      .run().changes;
    const excess = this.db.$client
      .prepare(
        `DELETE FROM outbox WHERE status = 'failed' AND id NOT IN (SELECT id FROM outbox WHERE status = 'failed' ORDER BY id DESC LIMIT ?)`,
      )
      .run(this.maxEntries).changes;
    if (old + excess > 0) this.metrics.eventsDropped.inc({ reason: 'failed-pruned' }, old + excess);
    return old + excess;
  }

  /**
   * Puts failed events back in the queue (the admin's retry); all of a token's when `ids` is omitted.
   * Events GA would no longer take (older than 72 hours) stay failed.
   */
  retryFailed(tokenId: number, ids?: number[]): number {
    const fresh = gte(outbox.occurredAt, this.clock() - GA_LIMITS.maxEventAgeMs);
    const where = ids
      ? and(eq(outbox.status, 'failed'), eq(outbox.tokenId, tokenId), fresh, inArray(outbox.id, ids))
      : and(eq(outbox.status, 'failed'), eq(outbox.tokenId, tokenId), fresh);
    const changed = this.db
      .update(outbox)
      .set({ status: 'pending', nextAttemptAt: 0, attempts: 0, lastError: null })
      .where(where)
      .run().changes;
    this.pending += changed;
    return changed;
  }

  private noteTokenError(tokenId: number, error: string): void {
    this.db.update(tokens).set({ lastError: error, lastErrorAt: this.clock() }).where(eq(tokens.id, tokenId)).run();
  }

  /** Recounts the waiting events from the table (after rows went away by cascade, e.g. a deleted token). */
  recount(): number {
    this.pending = this.countPending();
    return this.pending;
  }

  private countPending(): number {
    const row = this.db.select({ n: count() }).from(outbox).where(eq(outbox.status, 'pending')).get();
    return row?.n ?? 0;
  }
}

/** `fn`, remembering its answer per argument object (for objects shared by several events). */
function memoByIdentity<T extends object>(fn: (value: T) => string): (value: T) => string {
  const seen = new Map<T, string>();
  return (value) => {
    let answer = seen.get(value);
    if (answer === undefined) seen.set(value, (answer = fn(value)));
    return answer;
  };
}

/** The hot paths' statements; the drizzle ones keep drizzle's row mapping. */
function prepareQueries(db: Db) {
  const ids = sql`(SELECT value FROM json_each(${sql.placeholder('ids')}))`;
  return {
    insert: db.$client.prepare<[{ tokenId: number; name: string; params: string; device: string | null; deviceKey: string; occurredAt: number }]>(INSERT_EVENT),
    dueTokenIds: db
      .selectDistinct({ tokenId: outbox.tokenId })
      .from(outbox)
      .where(and(eq(outbox.status, 'pending'), lte(outbox.nextAttemptAt, sql.placeholder('now'))))
      .prepare(),
    nextDue: db
      .select({ at: sql<number | null>`min(${outbox.nextAttemptAt})` })
      .from(outbox)
      .where(eq(outbox.status, 'pending'))
      .prepare(),
    dueRows: db
      .select()
      .from(outbox)
      .where(and(eq(outbox.status, 'pending'), eq(outbox.tokenId, sql.placeholder('tokenId')), lte(outbox.nextAttemptAt, sql.placeholder('now'))))
      // The index (status, token_id, next_attempt_at, then the row id) yields this order without sorting
      // the whole backlog.
      .orderBy(asc(outbox.nextAttemptAt), asc(outbox.id))
      .limit(sql.placeholder('limit'))
      .prepare(),
    deleteIds: db.delete(outbox).where(sql`${outbox.id} IN ${ids}`).prepare(),
    countOutcome: db.$client.prepare<[{ tokenId: number; hour: number; delivered: number; failed: number }]>(COUNT_OUTCOME),
    noteDelivered: db.update(tokens).set({ lastDeliveredAt: sql`${sql.placeholder('now')}` }).where(eq(tokens.id, sql.placeholder('tokenId'))).prepare(),
  };
}

/** A stable key for device fields: events with equal keys may share a GA request. */
export function deviceKey(device: DeviceFields): string {
  return JSON.stringify([
    device.category,
    device.language,
    device.operating_system ?? '',
    device.operating_system_version ?? '',
    device.browser ?? '',
    device.browser_version ?? '',
  ]);
}

function hourOf(ms: number): number {
  return ms - (ms % HOUR_MS);
}
