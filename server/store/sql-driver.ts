/** What one statement gave back: its rows (for a query or a RETURNING) and how many rows it changed. */
export interface SqlResult<R> {
  rows: R[];
  changes: number;
}

/** How a transaction is run. */
export interface TransactionOptions {
  /** Synced to disk before the commit returns (default true). */
  durable?: boolean;
}

/** What delivery bookkeeping asks for: committed, not waited on the disk for. */
export const BOOKKEEPING: TransactionOptions = { durable: false };

/** Runs plain SQL written with `?` placeholders, the same text for both dialects. */
export interface SqlExecutor {
  query<R = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<SqlResult<R>>;
}

/**
 * One connection (SQLite) or pool (PostgreSQL) behind the SQL store. The store's SQL is shared; where the
 * dialects differ, the store asks `dialect` (the few fragments below).
 */
export interface SqlDriver extends SqlExecutor {
  readonly dialect: 'sqlite' | 'postgres';
  /**
   * Runs `work` in one transaction that writes: SQLite takes the write lock at once (BEGIN IMMEDIATE), so
   * what `work` read stays true until it commits; PostgreSQL runs it on one connection of the pool.
   * A transaction is durable (synced to disk before it returns) unless `durable: false` says its loss in a power
   * cut costs nothing but a second send (delivery bookkeeping); a later durable commit syncs it along.
   */
  transaction<T>(work: (tx: SqlExecutor) => Promise<T>, options?: TransactionOptions): Promise<T>;
  /**
   * Why the last write could not be done (disk full, locked, gone), until a write succeeds again; undefined
   * when writes work.
   */
  trouble(): string | undefined;
  /** Tries a small write that is rolled back: throws `StoreUnavailableError` while writes cannot be done. */
  probeWrite(): Promise<void>;
  close(): Promise<void>;
}

/** `column IN (ids)` as one parameter, for either dialect. */
export function idIn(dialect: SqlDriver['dialect'], column: string, ids: readonly number[]): [string, unknown] {
  return dialect === 'postgres'
    ? [`${column} = ANY(?::bigint[])`, ids]
    : [`${column} IN (SELECT value FROM json_each(?))`, JSON.stringify(ids)];
}

/** The larger of two SQL values. */
export function greatest(dialect: SqlDriver['dialect'], a: string, b: string): string {
  return dialect === 'postgres' ? `GREATEST(${a}, ${b})` : `max(${a}, ${b})`;
}

/** Locks the selected rows for the transaction, skipping those another transaction holds (PostgreSQL). */
export function skipLocked(dialect: SqlDriver['dialect']): string {
  return dialect === 'postgres' ? ' FOR UPDATE SKIP LOCKED' : '';
}

/** Locks the selected row for the transaction (PostgreSQL; SQLite's write transaction already holds the file). */
export function forUpdate(dialect: SqlDriver['dialect']): string {
  return dialect === 'postgres' ? ' FOR UPDATE' : '';
}

/**
 * A statement that makes the transaction the only one of its kind at a time (PostgreSQL's transaction-level
 * advisory lock), or undefined where the write transaction is exclusive already (SQLite).
 */
export function exclusively(dialect: SqlDriver['dialect'], what: string): [string, unknown[]] | undefined {
  return dialect === 'postgres' ? ['SELECT pg_advisory_xact_lock(hashtext(?))', [`ga4-relay-analytics:${what}`]] : undefined;
}
