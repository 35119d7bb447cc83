import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database, { type Statement } from 'better-sqlite3';
import { readMigrationFiles } from 'drizzle-orm/migrator';
import { packagePath } from '../../core/package-root.ts';
import { DatabaseError, STORE_CLOSED, StoreUnavailableError } from '../errors.ts';
import type { SqlDriver, SqlExecutor, SqlResult, TransactionOptions } from '../sql-driver.ts';
import { WriteLock } from './write-lock.ts';

const MIGRATIONS_FOLDER = packagePath('drizzle', 'sqlite');
const MIGRATIONS_TABLE = '__drizzle_migrations';
/** How long a statement waits for another process's write lock before the store reports it unavailable. */
export const BUSY_TIMEOUT_MS = 5_000;
/**
 * How long a transaction waits for another thread of this process to let go of the {@link WriteLock}; past it, it
 * goes on under SQLite's own lock. The relay's longest transactions take a few milliseconds.
 */
const LOCK_WAIT_MS = 250;
const STATEMENT_CACHE = 500;

/** SQLite's answers that mean "not now" rather than "wrong": full disk, locked, I/O trouble. */
const UNAVAILABLE = /^SQLITE_(FULL|BUSY|LOCKED|IOERR|CANTOPEN|READONLY|PROTOCOL)/;

/** A passing SQLite condition as {@link StoreUnavailableError}; anything else as it is. */
function translate(error: unknown): unknown {
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && UNAVAILABLE.test(code)) {
    const why = code.startsWith('SQLITE_FULL') ? 'the disk is full' : code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED') ? 'the database is locked' : `the database cannot be written (${code})`;
    return new StoreUnavailableError(why);
  }
  return error;
}

/** Ends a write probe: its transaction is rolled back on purpose. */
class ProbeDone extends Error {}

/** better-sqlite3 binds numbers, strings, bigints, buffers and null: booleans become 1/0. */
function bindable(params: readonly unknown[]): unknown[] {
  return params.map((p) => (typeof p === 'boolean' ? (p ? 1 : 0) : p === undefined ? null : p));
}

/** How a SQLite file is opened. */
export interface SqliteOptions {
  /** A {@link WriteLock}'s buffer, shared with the other threads of this process that write to the same file. */
  writeLock?: SharedArrayBuffer;
}

/**
 * Opens (creating its folder) the SQLite file, sets it up for several processes and for durable commits, and
 * applies the committed migrations under the write lock, so processes starting together migrate once.
 * @example const driver = openSqlite(':memory:');
 */
export function openSqlite(path: string, options: SqliteOptions = {}): SqliteDriver {
  if (path !== ':memory:') {
    const folder = dirname(resolve(path));
    try {
      mkdirSync(folder, { recursive: true });
    } catch (error) {
      throw new DatabaseError(`cannot create the database folder ${folder}: ${(error as Error).message}`);
    }
  }
  let sqlite: Database.Database;
  try {
    sqlite = new Database(path);
  } catch (error) {
    throw new DatabaseError(`cannot open the database ${path}: ${(error as Error).message}`);
  }
  try {
    // WAL lets readers and one writer work at once, across processes. FULL syncs each commit to the disk, so
    // a 204 (answered after the commit) holds through a power cut too; the group commit of concurrent hits
    // keeps that to one sync per batch.
    sqlite.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('synchronous = FULL');
    sqlite.pragma('foreign_keys = ON');
    migrate(sqlite);
    return new SqliteDriver(sqlite, options.writeLock && new WriteLock(options.writeLock));
  } catch (error) {
    sqlite.close();
    throw new DatabaseError(`cannot use the database ${path}: ${(error as Error).message}`);
  }
}

/** drizzle's migrations, applied as drizzle's own migrator does, but inside one write transaction taken at once. */
function migrate(sqlite: Database.Database): void {
  const migrations = readMigrationFiles({ migrationsFolder: MIGRATIONS_FOLDER });
  sqlite.exec('BEGIN IMMEDIATE');
  try {
    sqlite.exec(`CREATE TABLE IF NOT EXISTS ${MIGRATIONS_TABLE} (id SERIAL PRIMARY KEY, hash text NOT NULL, created_at numeric)`);
    const last = sqlite.prepare(`SELECT created_at FROM ${MIGRATIONS_TABLE} ORDER BY created_at DESC LIMIT 1`).pluck().get() as number | undefined;
    for (const migration of migrations) {
      if (last !== undefined && Number(last) >= migration.folderMillis) continue;
      for (const statement of migration.sql) if (statement.trim() !== '') sqlite.exec(statement);
      sqlite.prepare(`INSERT INTO ${MIGRATIONS_TABLE} (hash, created_at) VALUES (?, ?)`).run(migration.hash, migration.folderMillis);
    }
    sqlite.exec('COMMIT');
  } catch (error) {
    sqlite.exec('ROLLBACK');
    throw error;
  }
}

/**
 * One better-sqlite3 connection as a {@link SqlDriver}. Its calls are synchronous; every query and transaction
 * goes through one queue, so a transaction that awaits between its statements never has another caller's
 * statement run inside it.
 */
export class SqliteDriver implements SqlDriver {
  readonly dialect = 'sqlite' as const;
  private readonly statements = new Map<string, Statement>();
  private queue: Promise<unknown> = Promise.resolve();
  private troubleReason: string | undefined;
  private readonly direct: SqlExecutor = { query: async (sql, params) => this.run(sql, params, true) };
  /**
   * The statements every transaction runs, prepared once (a group commit runs hundreds of transactions a second).
   * Not the `synchronous` pragma: SQLite applies a pragma when it is prepared, so a prepared one is not reliable.
   */
  private readonly control: Record<'begin' | 'commit' | 'rollback', Statement>;
  /** The connection's `synchronous` as last set (FULL as opened): switched only when a commit needs the other. */
  private synchronous: 'FULL' | 'NORMAL' = 'FULL';

  constructor(
    readonly connection: Database.Database,
    /** Shared with the other threads of this process that write to the file, if any. */
    private readonly lock?: WriteLock,
  ) {
    this.control = {
      begin: connection.prepare('BEGIN IMMEDIATE'),
      commit: connection.prepare('COMMIT'),
      rollback: connection.prepare('ROLLBACK'),
    };
  }

  query<R>(sql: string, params: readonly unknown[] = []): Promise<SqlResult<R>> {
    return this.serially(async () => this.run<R>(sql, params));
  }

  transaction<T>(work: (tx: SqlExecutor) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
    const durable = options.durable ?? true;
    return this.serially(async () => {
      this.checkOpen();
      // Transactions run one at a time on this connection, so the setting is this transaction's alone.
      this.syncFor(durable);
      // Every statement of the work is synchronous, so the lock is held for the transaction's run and no longer.
      const locked = this.lock?.acquire(LOCK_WAIT_MS) ?? false;
      try {
        this.control.begin.run();
        const result = await work(this.direct);
        this.control.commit.run();
        this.troubleReason = undefined;
        return result;
      } catch (error) {
        if (this.connection.inTransaction) this.control.rollback.run();
        throw this.noted(translate(error));
      } finally {
        if (locked) this.lock?.release();
      }
    });
  }

  trouble(): string | undefined {
    return this.troubleReason;
  }

  probeWrite(): Promise<void> {
    return this.transaction(async (tx) => {
      // A row big enough to need new pages: a full disk (or a full max_page_count) refuses it.
      await tx.query("INSERT INTO drop_counts (reason, event, n) VALUES ('write-probe', ?, 0)", [`probe-${'x'.repeat(8192)}-${Date.now()}`]);
      throw new ProbeDone();
    }).catch((error: unknown) => {
      if (!(error instanceof ProbeDone)) throw error;
      this.troubleReason = undefined;
    });
  }

  /** Remembers why writes fail while they do. */
  private noted(error: unknown): unknown {
    if (error instanceof StoreUnavailableError) this.troubleReason = error.message;
    return error;
  }

  async close(): Promise<void> {
    await this.queue.catch(() => undefined);
    if (this.connection.open) this.connection.close();
  }

  /** One statement; a write outside a transaction takes the thread's write lock for its run. */
  private run<R>(sql: string, params: readonly unknown[] = [], inTransaction = false): SqlResult<R> {
    let locked = false;
    try {
      this.checkOpen();
      const statement = this.statement(sql);
      if (statement.reader) return { rows: statement.all(...bindable(params)) as R[], changes: 0 };
      // A write on its own commits at once, durably.
      if (!inTransaction) this.syncFor(true);
      locked = !inTransaction && (this.lock?.acquire(LOCK_WAIT_MS) ?? false);
      return { rows: [], changes: statement.run(...bindable(params)).changes };
    } catch (error) {
      throw this.noted(translate(error));
    } finally {
      if (locked) this.lock?.release();
    }
  }

  /** A call after the store closed (analytics was stopped) fails at once, as a 503 would say, not as a driver's error. */
  private checkOpen(): void {
    if (!this.connection.open) throw new StoreUnavailableError(STORE_CLOSED);
  }

  /**
   * Sets `synchronous` for the next commit: FULL for a durable one (synced before it returns), NORMAL for
   * bookkeeping. The pragma is prepared afresh each time it runs (see `control`), so it runs only when the level
   * changes: the relay's connection commits bookkeeping alone, over a hundred times a second.
   */
  private syncFor(durable: boolean): void {
    const wanted = durable ? 'FULL' : 'NORMAL';
    if (this.synchronous === wanted) return;
    this.connection.pragma(`synchronous = ${wanted}`);
    this.synchronous = wanted;
  }

  /** Each distinct SQL text is prepared once (the store's texts are a fixed set). */
  private statement(sql: string): Statement {
    let statement = this.statements.get(sql);
    if (!statement) {
      if (this.statements.size >= STATEMENT_CACHE) this.statements.clear();
      statement = this.connection.prepare(sql);
      this.statements.set(sql, statement);
    }
    return statement;
  }

  private serially<T>(work: () => Promise<T>): Promise<T> {
    const result = this.queue.then(work);
    this.queue = result.catch(() => undefined);
    return result;
  }
}
