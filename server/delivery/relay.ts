import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Clock } from '../core/clock.ts';
import type { Config } from '../core/config.ts';
import type { Logger } from '../core/log.ts';
import type { Metrics } from '../core/metrics.ts';
import type { Store } from '../store/store.ts';
import type { Identity, SentRequest, Token } from '../store/types.ts';
import { skipReason } from '../tokens/team-token.ts';
import { retryDelay } from './backoff.ts';
import { GA_LIMITS } from './measurement-protocol.ts';
import type { Outbox } from './outbox.ts';
import { SentLog } from './sent-log.ts';
import { deliverTokenRound, type TokenRoundOptions } from './token-round.ts';

/** What the relay works with. */
export interface RelayDeps {
  config: Pick<Config, 'disabled' | 'gaUrl' | 'appVersion'>;
  store: Store;
  identity: Identity;
  outbox: Outbox;
  metrics: Metrics;
  clock: Clock;
  log: Logger;
  fetch: typeof fetch | undefined;
  /** The timeout of a GA request, unless {@link RelayOptions.timeoutMs} says otherwise. */
  gaTimeoutMs: number;
}

/** Tuning of the delivery loop; the defaults suit production. */
export interface RelayOptions {
  /** A request with fewer than 25 events waits until its oldest event is this old, so more can join it. */
  lingerMs?: number;
  /** A GA request that takes longer is abandoned and retried (default: the deps' `gaTimeoutMs`). */
  timeoutMs?: number;
  /** Requests in flight at once per token. */
  concurrency?: number;
  /** Outbox rows claimed per token per round. */
  batchRows?: number;
  /** How long claimed rows stay this relay's; another relay takes them over after that (a crash, a hang). */
  leaseMs?: number;
  /** How often to look for events queued by other processes. */
  pollMs?: number;
  /** How long a stop waits for requests in flight before abandoning them (they stay queued). */
  stopGraceMs?: number;
  /** The last requests to each token kept for the admin to read. */
  keepSent?: number;
  /**
   * Who this relay is in the leases it takes (random by default). A relay started again in place of one that
   * died in this process passes the dead one's, and takes its tokens back at once.
   */
  owner?: string;
  random?: () => number;
}

/** Delivery to GA as the rest of the collector sees it: in this thread ({@link Relay}) or in one of its own. */
export interface Delivery {
  /** Starts delivering (nothing at all when analytics is disabled); a stopped one may start again. */
  start(): void;
  /** New events arrived: deliver them (after the linger time). */
  wake(): void;
  /** Stops, giving requests in flight a grace period; their events stay queued. */
  stop(): Promise<void>;
  /** Delivers everything due now, partial requests included. */
  drain(): Promise<void>;
  /** Puts a token's failed events back in the queue (all, or those of `ids`) and tries now; returns how many. */
  retryFailed(tokenId: number, ids?: number[]): Promise<number>;
}

/** A name for a relay's leases that no other relay, in any process on any machine, has. */
export function newRelayOwner(): string {
  return `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
}

/** Expiry and pruning run this often. */
const MAINTENANCE_EVERY_MS = 60_000;
/** Failed events are kept this long for the admin, then go. */
export const FAILED_RETENTION_MS = 7 * 24 * 3_600_000;
/** Deliveries per token and hour are kept this long. */
export const HOUR_COUNTS_RETENTION_MS = 90 * 24 * 3_600_000;
/** At most this many failed events are kept, whatever their age. */
const MAX_FAILED = 100_000;

/**
 * Delivers the outbox to GA: each round, for each token GA is not failing for, claims a batch of due events
 * with a lease and sends it, up to 25 events a request. Any number of relays (in any number of processes)
 * may share one store; a claim is theirs alone until its lease runs out. One round at a time per relay.
 */
export class Relay implements Delivery {
  private readonly options: Required<Omit<RelayOptions, 'owner'>>;
  /** Who this relay is in the leases it takes. */
  readonly owner: string;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private running: Promise<unknown> | undefined;
  private started = false;
  private listening = false;
  private lastMaintenanceAt = -Infinity;
  private failedRounds = 0;
  private readonly loggedSkips = new Set<string>();
  private stopController = new AbortController();
  /** Requests sent, waiting for their turn to be written to the store's log. */
  private readonly sentLog: SentLog;

  constructor(
    private readonly deps: RelayDeps,
    options: RelayOptions = {},
  ) {
    this.owner = options.owner ?? newRelayOwner();
    this.options = {
      lingerMs: 500,
      timeoutMs: deps.gaTimeoutMs,
      concurrency: 4,
      batchRows: 500,
      leaseMs: 30_000,
      pollMs: 1_000,
      stopGraceMs: 3_000,
      keepSent: 200,
      random: Math.random,
      ...options,
    };
    this.sentLog = new SentLog(this.options.keepSent);
  }

  /** Starts delivering (nothing at all when analytics is disabled); a stopped relay may start again. */
  start(): void {
    if (this.started || this.deps.config.disabled) return;
    this.started = true;
    this.stopController = new AbortController();
    if (!this.listening) {
      this.listening = true;
      this.deps.outbox.onAdded(() => this.wake());
    }
    void this.deps.store.listTokens().then(
      (tokens) => tokens.forEach((token) => this.noteSkipped(token)),
      () => undefined,
    );
    // Leases a predecessor under this owner held (it died in this process) are ended before the first round.
    void this.deps.store
      .releaseLeases(this.owner)
      .catch(() => undefined)
      .then(() => this.schedule(0));
  }

  /**
   * Puts a token's failed events back in the queue (all, or those of `ids`) and tries now; the token's hold is
   * lifted, for what waited behind it too. Returns how many went back. GA no longer takes events past 72 hours.
   */
  async retryFailed(tokenId: number, ids?: number[]): Promise<number> {
    const now = this.deps.clock();
    const changed = await this.deps.store.retryFailed({ tokenId, since: now - GA_LIMITS.maxEventAgeMs, now, ids });
    if (changed > 0) this.wake(0);
    return changed;
  }

  /** New events arrived: a round after the linger time (or `delayMs`), unless one is due sooner. */
  wake(delayMs: number = this.options.lingerMs): void {
    if (this.started) this.schedule(delayMs);
  }

  /**
   * Stops the loop: the round in progress gets a grace period, then its requests are abandoned and their events
   * stay queued; what waited for its linger is sent now if GA answers within the grace.
   */
  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    clearTimeout(this.timer);
    this.timer = undefined;
    const grace = setTimeout(() => this.stopController.abort(new Error('relay stopping')), this.options.stopGraceMs);
    try {
      await this.running;
      if (!this.stopController.signal.aborted) await this.exclusive(() => this.round(true));
    } catch {
      // The events stay queued; nothing more to do on the way out.
    } finally {
      clearTimeout(grace);
    }
    // The log's waiting requests, when the last round did not come to write them.
    for (const { tokenId, requests } of this.sentLog.due(this.deps.clock(), true)) await this.writeSent(tokenId, requests);
  }

  /**
   * Writes requests sent to the admin's log. A failure costs the log those requests, and nothing else: the events
   * they carried are settled already, and delivery goes on.
   */
  private async writeSent(tokenId: number, requests: SentRequest[]): Promise<void> {
    if (requests.length === 0) return;
    try {
      await this.deps.store.recordSent(tokenId, requests, this.options.keepSent);
    } catch (error) {
      this.deps.log.warn(`token ${tokenId}: ${requests.length} request(s) sent to GA not written to the admin's log: ${(error as Error).message}`);
    }
  }

  /** Delivers everything due now, partial requests included, round after round until nothing due is left. */
  async drain(): Promise<void> {
    while ((await this.exclusive(() => this.round(true))).more) {
      // keep going while full batches were taken
    }
  }

  /** Runs rounds one at a time within this relay (other relays are kept apart by their claims). */
  private exclusive<T>(round: () => Promise<T>): Promise<T> {
    const result = (this.running ?? Promise.resolve()).then(round);
    const settled = result.catch(() => undefined);
    this.running = settled;
    void settled.then(() => {
      if (this.running === settled) this.running = undefined;
    });
    return result;
  }

  private schedule(delayMs: number): void {
    const wait = Math.max(0, Math.min(delayMs, 2_147_000_000));
    const at = Date.now() + wait;
    if (this.timer && this.timerAt <= at) return;
    clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timerAt = Infinity;
      void this.tick();
    }, wait);
  }

  private async tick(): Promise<void> {
    if (!this.started) return;
    let next: number;
    try {
      const { more, nextAt } = await this.exclusive(() => (this.started ? this.round(false) : Promise.resolve({ more: false, nextAt: Infinity })));
      this.failedRounds = 0;
      next = more ? 0 : Math.min(nextAt - this.deps.clock(), this.options.pollMs);
    } catch (error) {
      // Something beside GA failed (the database?): the events stay queued; look again later, not at once.
      this.deps.log.error('delivery round failed', error);
      next = retryDelay(this.failedRounds++, this.options.random);
    }
    if (this.started) this.schedule(next);
  }

  /** One round: each token's due events, one batch each. Says whether more waits now, and when to look next. */
  private async round(flush: boolean): Promise<{ more: boolean; nextAt: number }> {
    const { store, clock } = this.deps;
    const now = clock();
    if (now - this.lastMaintenanceAt >= MAINTENANCE_EVERY_MS) {
      this.lastMaintenanceAt = now;
      await this.maintain(now);
    }
    const tokens = (await store.listTokens()).filter((token) => !this.noteSkipped(token));
    const options: TokenRoundOptions = {
      owner: this.owner,
      leaseMs: this.options.leaseMs,
      batchRows: this.options.batchRows,
      concurrency: this.options.concurrency,
      lingerMs: this.options.lingerMs,
      timeoutMs: this.options.timeoutMs,
      flush,
      signal: this.stopController.signal,
      random: this.options.random,
      recordSent: (tokenId, requests) => this.writeSent(tokenId, this.sentLog.take(tokenId, requests, clock())),
    };
    const deps = { ...this.deps, gaUrl: this.deps.config.gaUrl, clientId: this.deps.identity.uuid, appVersion: this.deps.config.appVersion };
    // Every token's delivery settles before the round ends; a token GA is failing for waits out its hold.
    const active = tokens.filter((token) => token.heldUntil <= now);
    const results = await Promise.allSettled(active.map((token) => deliverTokenRound(deps, options, token)));
    // Requests that waited their turn for the log and whose token settled nothing since (all of them when flushing);
    // none for a token that is gone.
    const sending = new Set(tokens.map((t) => t.id));
    this.sentLog.keepOnly(sending);
    for (const { tokenId, requests } of this.sentLog.due(clock(), flush)) await this.writeSent(tokenId, requests);
    const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failure) throw failure.reason;
    const lingerUntil = new Map<number, number>();
    let more = false;
    results.forEach((result, i) => {
      if (result.status !== 'fulfilled') return;
      more ||= result.value.more;
      if (result.value.lingerUntil !== undefined) lingerUntil.set((active[i] as Token).id, result.value.lingerUntil);
    });
    // Next: when a token we send to has an event due (a held-back partial request: once its linger is up).
    const due = (await store.dueTimes()).filter((d) => sending.has(d.tokenId)).map((d) => lingerUntil.get(d.tokenId) ?? d.dueAt);
    return { more, nextAt: Math.min(this.sentLog.dueAt(), ...due) };
  }

  /** Expiry of what GA no longer takes, and the bounds of what is kept for the admin. */
  private async maintain(now: number): Promise<void> {
    const { store, outbox } = this.deps;
    outbox.countDrops(await store.expire(now - GA_LIMITS.maxEventAgeMs, now));
    await store.pruneFailed(now - FAILED_RETENTION_MS, MAX_FAILED);
    await store.pruneHourCounts(now - HOUR_COUNTS_RETENTION_MS);
  }

  /** True when the relay does not send to `token` (placeholder id, no secret); says so once per token and reason. */
  private noteSkipped(token: Token): boolean {
    const reason = skipReason(token);
    if (!reason) return false;
    const key = `${token.id}:${reason}`;
    if (!this.loggedSkips.has(key)) {
      this.loggedSkips.add(key);
      this.deps.log.warn(`token ${token.id} (${token.name}) skipped: ${reason}`);
    }
    return true;
  }
}
