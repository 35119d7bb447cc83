import type { Clock } from '../core/clock.ts';
import type { Metrics } from '../core/metrics.ts';
import { redactSecret } from '../core/secrets.ts';
import type { RoundOutcome, Store } from '../store/store.ts';
import type { Claim, ClaimRef, Token } from '../store/types.ts';
import { featureOfEvent, featureOn } from '../tokens/features.ts';
import { retryDelay } from './backoff.ts';
import { describeNetworkError, postToGa } from './ga-client.ts';
import { mpUrl, rawRequests, type RawRequest } from './measurement-protocol.ts';
import type { SentToGa } from './sent-log.ts';

/** What one token's delivery in one round works with. */
export interface TokenRoundDeps {
  store: Store;
  metrics: Metrics;
  clock: Clock;
  gaUrl: string;
  clientId: string;
  appVersion: string;
  fetch: typeof fetch | undefined;
}

/** How one token's round is run. */
export interface TokenRoundOptions {
  /** Who claims (unique per relay). */
  owner: string;
  leaseMs: number;
  batchRows: number;
  concurrency: number;
  lingerMs: number;
  timeoutMs: number;
  /** Send partial requests without waiting for their linger (drain, shutdown). */
  flush: boolean;
  /** Abandons requests in flight (the relay is stopping). */
  signal: AbortSignal;
  random: () => number;
  /** Hands the requests sent to the admin's log, which may hold them for their turn (see SentLog); never rejects. */
  recordSent(tokenId: number, requests: SentToGa[]): Promise<void>;
}

/** What a token's round came to. */
export interface TokenRoundResult {
  /** A full batch was taken and GA is not failing: more may wait right now. */
  more: boolean;
  /** When partial requests held back for their linger may go, if any were. */
  lingerUntil: number | undefined;
}

type Outcome =
  | { kind: 'delivered'; sent: SentToGa }
  | { kind: 'retry'; sent?: SentToGa; error: string; retryAfter?: number }
  | { kind: 'failed'; sent: SentToGa; error: string }
  | { kind: 'abandoned' };

/** Classifies GA's answer: 2xx delivered; 429, 5xx and 408 passing; any other 4xx refused for good. */
export function classifyStatus(status: number): 'delivered' | 'retry' | 'failed' {
  if (status >= 200 && status < 300) return 'delivered';
  if (status === 429 || status === 408 || status >= 500) return 'retry';
  return 'failed';
}

/**
 * The requests of a claim that go now and those that wait: a full request goes at once, a partial one only
 * once its oldest event has waited `lingerMs` (so that a burst fills requests rather than sending what has
 * arrived so far), or when flushing.
 */
export function chooseRequests<R extends { full: boolean; oldestAt: number }>(requests: R[], now: number, lingerMs: number, flush: boolean): { send: R[]; wait: R[] } {
  const send: R[] = [];
  const wait: R[] = [];
  for (const request of requests) (flush || request.full || request.oldestAt + lingerMs <= now ? send : wait).push(request);
  return { send, wait };
}

/**
 * Delivers one batch of a token's due events: claims them with a lease, drops those whose feature was switched
 * off, sends what should go now (a few requests at a time) and settles each request's rows by GA's answer.
 */
export async function deliverTokenRound(deps: TokenRoundDeps, options: TokenRoundOptions, token: Token): Promise<TokenRoundResult> {
  const { store, clock } = deps;
  const now = clock();
  const claim = await store.claim({ tokenId: token.id, owner: options.owner, now, leaseMs: options.leaseMs, limit: options.batchRows });
  // Nothing due (or another relay holds the token): the claim holds no lease.
  if (claim.rows.length === 0) return { more: false, lingerUntil: undefined };
  const ref: ClaimRef = { id: claim.id, tokenId: claim.tokenId };
  const progress = { ended: false };
  try {
    return await deliverClaim(deps, options, token, { ...claim, now }, progress);
  } finally {
    // The token is free for any relay again (of this process or another) as soon as this batch is settled: the
    // settlement gives the lease back itself, and this only when it did not come to that.
    if (!progress.ended) await store.endClaim(ref);
  }
}

/** Sends what should go now of a claimed batch, and settles each request's rows by GA's answer. */
async function deliverClaim(
  deps: TokenRoundDeps,
  options: TokenRoundOptions,
  token: Token,
  claim: Claim & { now: number },
  progress: { ended: boolean },
): Promise<TokenRoundResult> {
  const { store, now } = { store: deps.store, now: claim.now };
  const switchedOff = claim.rows.filter((row) => !featureOn(token, featureOfEvent(row.name))).map((row) => row.id);
  // A feature switched off after its events were queued (or put back by a retry): they are not sent.
  for (const drop of await store.discard({ claim: { id: claim.id, tokenId: claim.tokenId }, ids: switchedOff, now, reason: 'switched-off' })) {
    deps.metrics.eventsDropped.inc({ reason: drop.reason, feature: featureOfEvent(drop.event) }, drop.count);
  }
  const ref: ClaimRef = { id: claim.id, tokenId: claim.tokenId };
  const off = new Set(switchedOff);
  const rows = claim.rows.filter((row) => !off.has(row.id));
  const { send, wait } = chooseRequests(rawRequests(rows, deps.clientId, deps.appVersion), now, options.lingerMs, options.flush);
  const lingerUntil = wait.length === 0 ? undefined : Math.min(...wait.map((r) => r.oldestAt + options.lingerMs));

  const attempts = new Map(rows.map((row) => [row.id, row.attempts]));
  // Counted once per round: several requests failing together are one failure of the token, not four.
  const failures = token.failures + 1;
  const outcome: RoundOutcome = { claim: ref, now, delivered: [], failed: [], retried: [] };
  const sent: SentToGa[] = [];
  let blocked = false;
  let next = 0;
  const worker = async () => {
    while (next < send.length) {
      const request = send[next++] as RawRequest;
      // GA is failing for this token: what is left waits for the hold with the rest.
      if (blocked) continue;
      const answer = await sendRequest(deps, options, token, request);
      if (answer.kind === 'abandoned') continue; // stopping: the rows stay as they were, for whoever comes next
      deps.metrics.gaRequests.inc({ token: String(token.id), outcome: answer.kind });
      if (answer.sent) sent.push(answer.sent);
      if (answer.kind === 'delivered') outcome.delivered.push(...request.ids);
      else if (answer.kind === 'failed') outcome.failed.push({ ids: request.ids, error: answer.error });
      else {
        blocked = true;
        // The back-off grows with the events' own tries and with the token's failures in a row, so fresh events
        // during an outage do not restart it from one second. GA's Retry-After is a floor: `0` is not "at once".
        const tries = Math.max(failures - 1, ...request.ids.map((id) => attempts.get(id) ?? 0));
        const at = deps.clock() + Math.max(answer.retryAfter ?? 0, retryDelay(tries, options.random));
        outcome.retried.push({ ids: request.ids, error: answer.error, nextAttemptAt: at, hold: { until: at, failures } });
      }
    }
  };
  const workers = await Promise.allSettled(Array.from({ length: Math.min(options.concurrency, send.length) }, worker));
  // One transaction for the whole batch, whatever happened: its rows' pages are written once, not per request.
  outcome.now = deps.clock();
  outcome.end = true;
  let settled: Awaited<ReturnType<Store['settle']>>;
  try {
    settled = await store.settle(outcome);
  } finally {
    // What was sent was sent, whatever the settlement came to: the log takes it in a transaction of its own.
    await options.recordSent(token.id, sent);
  }
  progress.ended = true;
  const label = { token: String(token.id) };
  deps.metrics.eventsDelivered.inc(label, settled.delivered);
  deps.metrics.eventsFailed.inc(label, settled.failed);
  deps.metrics.eventsRetried.inc(label, settled.retried);
  const failure = workers.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failure) throw failure.reason;
  // GA took something and refused nothing passing-ly: the token is healthy again. A success that overlapped a
  // failure does not lift the hold.
  if (outcome.delivered.length > 0 && !blocked && token.failures > 0) await store.clearHold(token.id);
  return { more: !blocked && claim.rows.length >= options.batchRows, lingerUntil };
}

async function sendRequest(deps: TokenRoundDeps, options: TokenRoundOptions, token: Token, request: RawRequest): Promise<Outcome> {
  const body = request.json;
  let bytes: Buffer | undefined;
  try {
    const answer = await postToGa(mpUrl(deps.gaUrl, token), body, {
      timeoutMs: options.timeoutMs,
      signal: options.signal,
      fetch: deps.fetch,
      sentBytes: (sentBytes) => (bytes = sentBytes),
    });
    // Exactly what GA received (the URL, which holds the secret, is not kept), for the log.
    const sent: SentToGa = { at: deps.clock(), status: answer.status, events: request.ids.length, body, bytes };
    const kind = classifyStatus(answer.status);
    if (kind === 'delivered') return { kind, sent };
    // GA's text can echo the request, secret included: blanked before it is cut (a cut could split it).
    const text = redactSecret(answer.text, token.apiSecret).slice(0, 200);
    const error = `GA answered ${answer.status}${text ? `: ${text}` : ''}`;
    if (kind === 'failed') return { kind, sent, error };
    return { kind, sent, error, retryAfter: answer.retryAfter };
  } catch (error) {
    if (options.signal.aborted) return { kind: 'abandoned' };
    return { kind: 'retry', error: describeNetworkError(error) };
  }
}
