import { drizzle } from 'drizzle-orm/node-postgres';
import { migrate } from 'drizzle-orm/node-postgres/migrator';
import pg from 'pg';
import { packagePath } from '../../core/package-root.ts';
import { DatabaseError, StoreUnavailableError } from '../errors.ts';
import { describePostgresUrl } from '../location.ts';
import type { SqlDriver, SqlExecutor, SqlResult, TransactionOptions } from '../sql-driver.ts';

const MIGRATIONS_FOLDER = packagePath('drizzle', 'postgres');
/** One advisory lock, held while migrating: processes starting together migrate once, one after the other. */
const MIGRATION_LOCK = 0x61_6e_61_6c; // "anal", any fixed number of this project
const INT8_OID = 20;

/** Options of {@link openPostgres}. */
export interface PostgresOptions {
  /** Connections in the pool (default 10). */
  max?: number;
  /** How long connecting may take before the store reports it unavailable (default 5 s). */
  connectTimeoutMs?: number;
}

/** Connection trouble, by PostgreSQL's SQLSTATE class or the socket's error code. */
function isUnavailable(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (/^(08|57P|53)/.test(code)) return true; // connection exception, operator intervention, insufficient resources
    if (/^E(CONNREFUSED|CONNRESET|PIPE|TIMEDOUT|HOSTUNREACH|NETUNREACH|AI_AGAIN|NOTFOUND)$/.test(code)) return true;
  }
  const message = error instanceof Error ? error.message : '';
  return /Connection terminated|connection timeout|Client has encountered a connection error|timeout exceeded when trying to connect/i.test(message);
}

function translate(error: unknown): unknown {
  if (!isUnavailable(error)) return error;
  const code = (error as { code?: unknown }).code;
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
  const pool = new pg.Pool({
    connectionString: url,
    max: options.max ?? 10,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5_000,
    idleTimeoutMillis: 30_000,
    // bigint columns (ids, times in ms) as numbers; they stay far below 2^53. Per pool, not global.
    types: { getTypeParser: ((oid: number, format?: string) => (oid === INT8_OID ? Number : pg.types.getTypeParser(oid, format as 'text'))) as typeof pg.types.getTypeParser },
  });
  // An idle connection that breaks (the server restarted) must not crash the process: the next query reconnects.
  pool.on('error', () => undefined);
  let lock: pg.PoolClient | undefined;
  try {
    lock = await pool.connect();
    await lock.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    await migrate(drizzle(pool), { migrationsFolder: MIGRATIONS_FOLDER });
    await lock.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]);
  } catch (error) {
    lock?.release(true);
    await pool.end().catch(() => undefined);
    const reason = (error instanceof Error ? error.message.split('\n')[0] : undefined) ?? String(error);
    const code = (error as { code?: unknown }).code;
    throw new DatabaseError(`cannot use the PostgreSQL database at ${where}: ${reason}${typeof code === 'string' && !reason.includes(code) ? ` (${code})` : ''}`);
  }
  lock.release();
  return new PostgresDriver(pool);
}

/** A `pg` pool as a {@link SqlDriver}: each statement is prepared once per connection, by name. */
export class PostgresDriver implements SqlDriver {
  readonly dialect = 'postgres' as const;
  private readonly names = new Map<string, { name: string; text: string }>();
  private troubleReason: string | undefined;

  constructor(private readonly pool: pg.Pool) {}

  query<R>(sql: string, params: readonly unknown[] = []): Promise<SqlResult<R>> {
    return this.run<R>(this.pool, sql, params);
  }

  async transaction<T>(work: (tx: SqlExecutor) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
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
      await client.query('ROLLBACK').catch(() => (broken = true));
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
