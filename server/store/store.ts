import type { EventBatch } from './event-batch.ts';
import type {
  Claim,
  ClaimRef,
  DropCount,
  FailedEvent,
  FirstToken,
  HostStats,
  HourCount,
  Identity,
  NewEvent,
  SentRequest,
  Token,
  TokenCounts,
  TokenSettings,
} from './types.ts';

/** What a claim asks of some of its rows. */
export interface Settlement {
  /** The claim only, not its rows: a settlement may cross a thread, and should not carry the whole batch. */
  claim: ClaimRef;
  ids: number[];
  now: number;
}

/** What a claim's requests came to, settled in one transaction (its rows' pages written once, not per request). */
export interface RoundOutcome {
  claim: ClaimRef;
  now: number;
  /** GA took these: they leave the outbox (whoever holds the token now) and are counted. */
  delivered: number[];
  /** GA refused these for good: kept as failed for the admin, with GA's answer. */
  failed: Array<{ ids: number[]; error: string }>;
  /** A passing failure: due again at `nextAttemptAt`; the token is held until `hold.until`. */
  retried: Array<{ ids: number[]; error: string; nextAttemptAt: number; hold: { until: number; failures: number } }>;
  /** The claim ends with this settlement: the token's lease is given back in the same transaction. */
  end?: boolean;
}

/**
 * The one place state lives: the install, the tokens, the outbox and what delivery knows. Any number of
 * processes may share one store; every method is safe to call from several of them at once. Two
 * implementations stand behind it (SQLite and PostgreSQL), held to the same tests.
 */
export interface Store {
  readonly dialect: 'sqlite' | 'postgres';
  /** Answers when the database does, writes included after they failed; throws `StoreUnavailableError` otherwise. */
  ping(): Promise<void>;
  /** Why writes fail right now (disk full, locked, unreachable), until one succeeds again; undefined when they work. */
  trouble(): string | undefined;
  close(): Promise<void>;

  // The install.
  /** The install's identity, made (with token 1) by whichever process comes first. */
  install(firstToken: FirstToken, now: number): Promise<Identity>;
  lastDailyStatsAt(): Promise<number | null>;
  /**
   * In one transaction: unless `onlyIfDue` and the last run is less than `intervalMs` old (and not in the
   * future), stores `at` as the last run and queues `events`. True when it ran.
   */
  recordDailyRun(run: { at: number; onlyIfDue: boolean; intervalMs: number; events: NewEvent[] }): Promise<boolean>;
  hostStats(): Promise<HostStats | undefined>;
  saveHostStats(stats: HostStats, now: number): Promise<void>;

  // Tokens.
  listTokens(): Promise<Token[]>;
  findToken(id: number): Promise<Token | undefined>;
  createToken(settings: TokenSettings, now: number): Promise<Token>;
  updateToken(id: number, patch: Partial<TokenSettings>, now: number): Promise<Token | undefined>;
  /** Deletes a token with its waiting and failed events; false when it did not exist. */
  deleteToken(id: number): Promise<boolean>;
  /** Moves on every change of the tokens' settings, by any process. */
  tokensVersion(): Promise<number>;

  // Admin sessions (by the hash of their id).
  addSession(idHash: string, expiresAt: number, now: number): Promise<void>;
  hasSession(idHash: string, now: number): Promise<boolean>;
  removeSession(idHash: string): Promise<void>;

  // The outbox.
  /**
   * Queues events, as they are or as a batch (one transaction); a token deleted meanwhile gets none. Returns how
   * many were written, by event name.
   */
  enqueue(events: NewEvent[] | EventBatch): Promise<Map<string, number>>;
  /** Events waiting (leased ones included). */
  pendingCount(): Promise<number>;
  /**
   * Keeps at most `max` events waiting: drops page views first, oldest first, then (only if host events alone
   * are over the bound) the oldest host events. Never drops rows under a live lease. Counted as `outbox-full`.
   */
  trimOutbox(max: number, now: number): Promise<DropCount[]>;
  /**
   * Leases the token to a new claim until `now + leaseMs` and returns its due events, oldest due first: up to
   * `limit`, or past it to the end of a packet. No rows when another claim holds the token's lease, or when nothing
   * is due (the lease is then given back at once). One relay at a time delivers a token.
   */
  claim(request: { tokenId: number; owner: string; now: number; leaseMs: number; limit: number }): Promise<Claim>;
  /** Gives the token's lease back (what was not sent stays due as it was). */
  endClaim(claim: ClaimRef): Promise<void>;
  /**
   * Ends every lease of claims `owner` made (the claim ids `owner:n`): a relay started again in place of one that
   * died, under the same owner, takes its tokens back at once instead of waiting for the leases to run out.
   */
  releaseLeases(owner: string): Promise<number>;
  /**
   * Settles what a claim's requests came to, in one transaction; failing or holding back rows needs the claim to
   * still hold the token. Returns how many rows each outcome changed.
   */
  settle(outcome: RoundOutcome): Promise<{ delivered: number; failed: number; retried: number }>;
  /** Drops claimed rows that will not be sent (their feature was switched off), counted under `reason`. */
  discard(settlement: Settlement & { reason: string }): Promise<DropCount[]>;
  /** GA took something for the token and refused nothing passing-ly: it is no longer held. */
  clearHold(tokenId: number): Promise<void>;
  /** For each token with waiting events, when the next one falls due (leases and the token's hold considered). */
  dueTimes(): Promise<Array<{ tokenId: number; dueAt: number }>>;
  /** Waiting events that happened before `cutoff` become failed (GA no longer takes them), counted as `expired`. */
  expire(cutoff: number, now: number): Promise<DropCount[]>;
  /** Failed events older than `before` go, and at most `keep` stay. Returns how many went. */
  pruneFailed(before: number, keep: number): Promise<number>;
  /** Delivery counts older than `before` go. */
  pruneHourCounts(before: number): Promise<number>;
  /**
   * Failed events (all of a token's, or those of `ids`) that happened since `since` wait again, due at `now`;
   * the token's hold is lifted and what waited behind it is due at `now` too. Returns how many went back.
   */
  retryFailed(request: { tokenId: number; since: number; now: number; ids?: number[] }): Promise<number>;

  // What the admin reads.
  tokenCounts(since: number): Promise<TokenCounts[]>;
  hourCounts(since: number): Promise<HourCount[]>;
  failedEvents(limit: number): Promise<{ total: number; items: FailedEvent[] }>;
  dropCounts(): Promise<DropCount[]>;
  /** Keeps what went to GA (oldest first), at most `keep` requests a token. */
  recordSent(tokenId: number, requests: SentRequest[], keep: number): Promise<void>;
  sentRequests(tokenId: number, limit: number): Promise<SentRequest[]>;
}
