import type { Clock } from '../core/clock.ts';
import type { Config } from '../core/config.ts';
import type { Logger } from '../core/log.ts';
import type { Metrics } from '../core/metrics.ts';
import { redactSecret } from '../core/secrets.ts';
import type { Identity } from '../store/install.ts';
import type { OutboxRow } from '../store/schema.ts';
import { featureOfEvent, featureOn } from '../tokens/features.ts';
import { skipReason } from '../tokens/team-token.ts';
import type { Token, Tokens } from '../tokens/tokens.ts';
import { retryDelay } from './backoff.ts';
import { describeNetworkError, postToGa } from './ga-client.ts';
import { buildRequests, GA_LIMITS, mpUrl, type MpRequest } from './measurement-protocol.ts';
import type { Outbox } from './outbox.ts';

/** What the relay works with. */
export interface RelayDeps {
  config: Pick<Config, 'disabled' | 'gaUrl' | 'appVersion'>;
  identity: Identity;
  outbox: Outbox;
  tokens: Pick<Tokens, 'all'>;
  metrics: Metrics;
  clock: Clock;
  log: Logger;
  fetch: typeof fetch | undefined;
  /** The timeout of a GA request, unless {@link RelayOptions.timeoutMs} says otherwise. */
  gaTimeoutMs: number;
}

/** Tuning of the delivery loop; the defaults suit production. */
export interface RelayOptions {
  /** After new events arrive, wait this long so that more can share a request (batching). */
  lingerMs?: number;
  /** A GA request that takes longer is abandoned and retried (default: the deps' `gaTimeoutMs`). */
  timeoutMs?: number;
  /** Requests in flight at once per token. */
  concurrency?: number;
  /** Outbox rows taken per token per round. */
  batchRows?: number;
  /** How long a stop waits for requests in flight before abandoning them (they are retried later). */
  stopGraceMs?: number;
  random?: () => number;
}

type Outcome =
  | { kind: 'delivered' }
  | { kind: 'retry'; error: string; retryAfter?: number }
  | { kind: 'failed'; error: string };

const EXPIRE_EVERY_MS = 60_000;
const SKIPPED_TOKEN_RECHECK_MS = 60_000;

/** Classifies GA's answer: 2xx delivered; 429, 5xx and 408 passing; any other 4xx refused for good. */
export function classifyStatus(status: number): 'delivered' | 'retry' | 'failed' {
  if (status >= 200 && status < 300) return 'delivered';
  if (status === 429 || status === 408 || status >= 500) return 'retry';
  return 'failed';
}

/**
 * Delivers the outbox to GA: per token, up to 25 events a request, retrying passing failures with
 * back-off for as long as GA would still take the event. One round runs at a time.
 */
export class Relay {
  private readonly options: Required<RelayOptions>;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private running: Promise<void> | undefined;
  private started = false;
  private lastExpireAt = 0;
  private failedRounds = 0;
  /** Tokens GA is failing for: nothing is sent to them before `until`, new events included. */
  private readonly holds = new Map<number, { until: number; failures: number }>();
  private readonly loggedSkips = new Set<string>();
  private readonly stopController = new AbortController();

  constructor(
    private readonly services: RelayDeps,
    options: RelayOptions = {},
  ) {
    this.options = {
      lingerMs: 500,
      timeoutMs: services.gaTimeoutMs,
      concurrency: 4,
      batchRows: 500,
      stopGraceMs: 3_000,
      random: Math.random,
      ...options,
    };
  }

  /** Starts delivering (nothing at all when analytics is disabled). */
  start(): void {
    if (this.started || this.services.config.disabled) return;
    this.started = true;
    for (const { token } of this.services.tokens.all()) {
      const reason = skipReason(token);
      if (reason) this.noteSkipped(token, reason);
    }
    this.services.outbox.onAdded(() => this.wake());
    this.schedule(0);
  }

  /**
   * Puts a token's failed events back in the queue (all, or those of `ids`) and tries now: the admin's retry
   * lifts the token's hold, for what waited behind it too. Returns how many went back.
   */
  retryFailed(tokenId: number, ids?: number[]): number {
    const { outbox, clock } = this.services;
    const changed = outbox.retryFailed(tokenId, ids);
    if (changed === 0) return 0;
    this.holds.delete(tokenId);
    outbox.retimeToken(tokenId, clock(), 'not-after');
    this.wake();
    return changed;
  }

  /** New events arrived: deliver them after the linger time. */
  wake(): void {
    if (this.started) this.schedule(this.options.lingerMs);
  }

  /** Stops the loop; requests in flight get a grace period, then are abandoned and stay queued. */
  async stop(): Promise<void> {
    this.started = false;
    clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.running) return;
    const grace = setTimeout(() => this.stopController.abort(new Error('relay stopping')), this.options.stopGraceMs);
    await this.running;
    clearTimeout(grace);
  }

  /** Delivers everything due now, round after round, until nothing due is left. */
  async drain(): Promise<void> {
    while (await this.exclusive(() => this.runRound())) {
      // keep going while full batches were taken
    }
  }

  /** Runs rounds one at a time: two rounds at once could send the same events twice. */
  private exclusive<T>(round: () => Promise<T>): Promise<T> {
    const result = (this.running ?? Promise.resolve()).then(round);
    const settled = result.then(
      () => undefined,
      () => undefined,
    );
    this.running = settled;
    void settled.then(() => {
      if (this.running === settled) this.running = undefined;
    });
    return result;
  }

  private schedule(delayMs: number): void {
    const at = Date.now() + Math.max(0, delayMs);
    if (this.timer && this.timerAt <= at) return;
    clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timerAt = Infinity;
      void this.tick();
    }, Math.max(0, delayMs));
  }

  private async tick(): Promise<void> {
    if (!this.started) return;
    let more = false;
    try {
      more = await this.exclusive(() => (this.started ? this.runRound() : Promise.resolve(false)));
      this.failedRounds = 0;
    } catch (error) {
      // Something beside GA failed (the database?): the events stay queued; look again later, not at once.
      this.services.log.error('delivery round failed', error);
      if (this.started) this.schedule(retryDelay(this.failedRounds++, this.options.random));
      return;
    }
    if (!this.started) return;
    if (more) {
      this.schedule(0);
      return;
    }
    const nextDueAt = this.services.outbox.nextDueAt();
    if (nextDueAt !== undefined) this.schedule(nextDueAt - this.services.clock());
  }

  /** One round: every token's due events, one batch each. True when a full batch was taken (more may wait). */
  private async runRound(): Promise<boolean> {
    const { outbox, clock, tokens } = this.services;
    const now = clock();
    if (now - this.lastExpireAt >= EXPIRE_EVERY_MS) {
      this.lastExpireAt = now;
      outbox.expire(now - GA_LIMITS.maxEventAgeMs);
      outbox.pruneFailed(now);
    }
    const tokenIds = outbox.dueTokenIds(now);
    if (tokenIds.length === 0) return false;
    const wanted = new Set(tokenIds);
    const due = tokens.all().flatMap(({ token }) => (wanted.has(token.id) ? [token] : []));
    // Every token's delivery settles before the round ends: a round that ended early would let the next
    // one take events still in flight and send them twice.
    const results = await Promise.allSettled(due.map((token) => this.deliverToken(token, now)));
    const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failure) throw failure.reason;
    return results.some((r) => r.status === 'fulfilled' && r.value);
  }

  private async deliverToken(token: Token, now: number): Promise<boolean> {
    const { outbox } = this.services;
    const reason = skipReason(token);
    if (reason) {
      this.noteSkipped(token, reason);
      outbox.retimeToken(token.id, now + SKIPPED_TOKEN_RECHECK_MS, 'not-before');
      return false;
    }
    const hold = this.holds.get(token.id);
    if (hold && hold.until > now) {
      // Events that arrived during the hold wait for its end too, rather than each probing GA.
      outbox.retimeToken(token.id, hold.until, 'not-before');
      return false;
    }
    const taken = outbox.due(token.id, now, this.options.batchRows);
    // A feature switched off after its events were queued (or put back by a retry): they are not sent.
    const rows: OutboxRow[] = [];
    const switchedOff: number[] = [];
    for (const row of taken) {
      if (featureOn(token, featureOfEvent(row.name))) rows.push(row);
      else switchedOff.push(row.id);
    }
    outbox.discard(switchedOff, 'switched-off');
    const requests = buildRequests(rows, this.services.identity.uuid, this.services.config.appVersion);
    const attemptsById = new Map(rows.map((row) => [row.id, row.attempts]));
    let blocked = false;
    let delivered = false;
    let next = 0;
    // Counted once per round: several requests failing together are one failure of the token, not four.
    const failures = (hold?.failures ?? 0) + 1;
    const worker = async () => {
      // A worker that throws (a database error) stops taking requests; the others finish theirs.
      while (!blocked && next < requests.length) {
        const request = requests[next++] as MpRequest;
        const outcome = await this.send(token, request);
        this.services.metrics.gaRequests.inc({ token: String(token.id), outcome: outcome.kind });
        if (outcome.kind === 'delivered') {
          delivered = true;
          outbox.delivered(token.id, request.ids);
        } else if (outcome.kind === 'failed') {
          outbox.failed(token.id, request.ids, outcome.error);
        } else {
          // The back-off grows with the events' own tries and with the token's failures in a row, so
          // fresh events during an outage do not restart it from one second.
          const attempts = Math.max(failures - 1, ...request.ids.map((id) => attemptsById.get(id) ?? 0));
          // GA's Retry-After is a floor: a `0` must not make the relay retry at once, in a loop.
          const delay = Math.max(outcome.retryAfter ?? 0, retryDelay(attempts, this.options.random));
          // The longest wait asked for in this round wins (a Retry-After beside a network error's back-off).
          const at = Math.max(this.services.clock() + delay, blocked ? (this.holds.get(token.id)?.until ?? 0) : 0);
          this.holds.set(token.id, { until: at, failures });
          outbox.retryLater(token.id, request.ids, at, outcome.error);
          // GA is failing for this token: hold back the rest of its queue too, rather than hammer it.
          outbox.retimeToken(token.id, at, 'not-before');
          blocked = true;
        }
      }
    };
    const workers = await Promise.allSettled(Array.from({ length: Math.min(this.options.concurrency, requests.length) }, worker));
    // GA took something and refused nothing passing-ly this round: the token is healthy again. A success that
    // overlapped a failure does not lift the hold.
    if (delivered && !blocked) this.holds.delete(token.id);
    const failure = workers.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failure) throw failure.reason;
    return !blocked && taken.length === this.options.batchRows;
  }

  /** Says once per token and reason that nothing is sent to it. */
  private noteSkipped(token: Token, reason: string): void {
    const key = `${token.id}:${reason}`;
    if (this.loggedSkips.has(key)) return;
    this.loggedSkips.add(key);
    this.services.log.warn(`token ${token.id} (${token.name}) skipped: ${reason}`);
  }

  private async send(token: Token, request: MpRequest): Promise<Outcome> {
    try {
      const answer = await postToGa(mpUrl(this.services.config.gaUrl, token), request.body, {
        timeoutMs: this.options.timeoutMs,
        signal: this.stopController.signal,
        fetch: this.services.fetch,
      });
      const kind = classifyStatus(answer.status);
      if (kind === 'delivered') return { kind };
      // GA's text can echo the request, secret included: blanked before it is cut (a cut could split it).
      const text = redactSecret(answer.text, token.apiSecret).slice(0, 200);
      const error = `GA answered ${answer.status}${text ? `: ${text}` : ''}`;
      if (kind === 'failed') return { kind, error };
      return { kind, error, retryAfter: answer.retryAfter };
    } catch (error) {
      return { kind: 'retry', error: describeNetworkError(error) };
    }
  }
}
