import { drizzle } from 'drizzle-orm/node-postgres';
import { migrate } from 'drizzle-orm/node-postgres/migrator';
import pg from 'pg';
import { packagePath } from '../../core/package-root.ts';
import { DatabaseError, STORE_CLOSED, StoreUnavailableError } from '../errors.ts';
import { describePostgresUrl } from '../location.ts';
import type { SqlDriver, SqlExecutor, SqlResult, TransactionOptions } from '../sql-driver.ts';

const MIGRATIONS_FOLDER = packagePath('drizzle', 'postgres');
/** One advisory lock, held while migrating: processes starting together migrate once, one after the other. */
const MIGRATION_LOCK = 0x61_6e_61_6c; // "anal", any fixed number of this project
const INT8_OID = 20;
/** How long a statement waits for a lock another session holds before the store reports the database locked (as SQLite's busy timeout). */
export const LOCK_TIMEOUT_MS = 5_000;
/**
 * How long a statement may go unanswered before the store reports the database unavailable and drops the connection:
 * a server that stopped answering, or a connection lost without a reset, would otherwise hold a hit (and every hit
 * queued behind its commit) for as long as TCP takes to give up, a quarter of an hour.
 */
export const QUERY_TIMEOUT_MS = 15_000;

/** Options of {@link openPostgres}. */
export interface PostgresOptions {
  /** Connections in the pool (default 10). */
  max?: number;
  /** How long connecting may take before the store reports it unavailable (default 5 s). */
  connectTimeoutMs?: number;
  /** How long a statement waits for a lock (default {@link LOCK_TIMEOUT_MS}). */
  lockTimeoutMs?: number;
  /** How long a statement may go unanswered (default {@link QUERY_TIMEOUT_MS}). */
  queryTimeoutMs?: number;
}

/** The client-side timeout's error (pg's `query_timeout`): the connection is in an unknown state. */
function isQueryTimeout(error: unknown): boolean {
  return error instanceof Error && error.message === 'Query read timeout';
}

/** Connection trouble, by PostgreSQL's SQLSTATE class or the socket's error code. */
function isUnavailable(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (/^(08|57P|53)/.test(code)) return true; // connection exception, operator intervention, insufficient resources
    if (code === '55P03') return true; // lock_not_available: lock_timeout ran out
    if (/^E(CONNREFUSED|CONNRESET|PIPE|TIMEDOUT|HOSTUNREACH|NETUNREACH|AI_AGAIN|NOTFOUND)$/.test(code)) return true;
  }
  const message = error instanceof Error ? error.message : '';
  return isQueryTimeout(error) || /Connection terminated|connection timeout|Client has encountered a connection error|timeout exceeded when trying to connect/i.test(message);
}

function translate(error: unknown): unknown {
  if (!isUnavailable(error)) return error;
  const code = (error as { code?: unknown }).code;
  if (code === '55P03') return new StoreUnavailableError('the database is locked');
  if (isQueryTimeout(error)) return new StoreUnavailableError('PostgreSQL did not answer in time');
  return new StoreUnavailableError(`PostgreSQL does not answer${typeof code === 'string' ? ` (${code})` : ''}`);
}

/** `?` placeholders as PostgreSQL's `$1, $2, …` (the store's SQL has no `?` inside literals). */
function numbered(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

/**
 * Connects a pool to PostgreSQL (13 or newer) and applies the committed migrations under an advisory lock.
 * Throws a {@link DatabaseError} with one line (no password) when the server cannot be reached or migrated.
 * @example const driver = await openPostgres('postgres://analytics@db.internal/analytics');
 */
export async function openPostgres(url: string, options: PostgresOptions = {}): Promise<PostgresDriver> {
  const where = describePostgresUrl(url);
  const connection = {
    connectionString: url,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5_000,
    // bigint columns (ids, times in ms) as numbers; they stay far below 2^53. Per connection, not global.
    types: { getTypeParser: ((oid: number, format?: string) => (oid === INT8_OID ? Number : pg.types.getTypeParser(oid, format as 'text'))) as typeof pg.types.getTypeParser },
  };
  // The migrations on a connection of their own, without the timeouts below: waiting for another process's
  // migrations, or for an older version's statements to let go of a table, is what a start should do.
  const migrator = new pg.Client(connection);
  migrator.on('error', () => undefined);
  try {
    await migrator.connect();
    await migrator.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    await migrate(drizzle(migrator), { migrationsFolder: MIGRATIONS_FOLDER });
    await migrator.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]);
  } catch (error) {
    const reason = (error instanceof Error ? error.message.split('\n')[0] : undefined) ?? String(error);
    const code = (error as { code?: unknown }).code;
    throw new DatabaseError(`cannot use the PostgreSQL database at ${where}: ${reason}${typeof code === 'string' && !reason.includes(code) ? ` (${code})` : ''}`);
  } finally {
    await migrator.end().catch(() => undefined);
  }
  const pool = new pg.Pool({
    ...connection,
    max: options.max ?? 10,
    idleTimeoutMillis: 30_000,
    // A lock held elsewhere, or a server that stopped answering, is a 503 after a bounded wait, never a hang.
    lock_timeout: options.lockTimeoutMs ?? LOCK_TIMEOUT_MS,
    query_timeout: options.queryTimeoutMs ?? QUERY_TIMEOUT_MS,
  });
  // An idle connection that breaks (the server restarted) must not crash the process: the next query reconnects.
  pool.on('error', () => undefined);
  return new PostgresDriver(pool);
}

/** A `pg` pool as a {@link SqlDriver}: each statement is prepared once per connection, by name. */
export class PostgresDriver implements SqlDriver {
  readonly dialect = 'postgres' as const;
  private readonly names = new Map<string, { name: string; text: string }>();
  private troubleReason: string | undefined;
  private closed = false;

  constructor(private readonly pool: pg.Pool) {}

  query<R>(sql: string, params: readonly unknown[] = []): Promise<SqlResult<R>> {
    if (this.closed) return Promise.reject(new StoreUnavailableError(STORE_CLOSED));
    return this.run<R>(this.pool, sql, params);
  }

  async transaction<T>(work: (tx: SqlExecutor) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
    if (this.closed) throw new StoreUnavailableError(STORE_CLOSED);
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (error) {
      const translated = translate(error);
      if (translated instanceof StoreUnavailableError) this.troubleReason = translated.message;
      throw translated;
    }
    let broken = false;
    try {
      await client.query('BEGIN');
      // Not waiting for the WAL flush is PostgreSQL's own way to commit bookkeeping cheaply.
      if (options.durable === false) await client.query('SET LOCAL synchronous_commit TO OFF');
      const result = await work({ query: (sql, params) => this.run(client, sql, params) });
      await client.query('COMMIT');
      return result;
    } catch (error) {
      // A statement that went unanswered still holds the connection: it is dropped (the server rolls back), not
      // asked to roll back behind it.
      if (isQueryTimeout(error)) broken = true;
      else await client.query('ROLLBACK').catch(() => (broken = true));
      throw translate(error);
    } finally {
      client.release(broken);
    }
  }

  trouble(): string | undefined {
    return this.troubleReason;
  }

  async probeWrite(): Promise<void> {
    // PostgreSQL refuses writes when it cannot be reached; a round trip tells.
    await this.query('SELECT 1 AS one');
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.pool.end();
  }

  private async run<R>(on: pg.Pool | pg.PoolClient, sql: string, params: readonly unknown[] = []): Promise<SqlResult<R>> {
    let prepared = this.names.get(sql);
    if (!prepared) {
      prepared = { name: `q${this.names.size + 1}`, text: numbered(sql) };
      this.names.set(sql, prepared);
    }
    try {
      const result = await on.query<R & pg.QueryResultRow>({ name: prepared.name, text: prepared.text, values: params as unknown[] });
      this.troubleReason = undefined;
      return { rows: result.rows, changes: result.rowCount ?? 0 };
    } catch (error) {
      const translated = translate(error);
      if (translated instanceof StoreUnavailableError) this.troubleReason = translated.message;
      throw translated;
    }
  }
}
