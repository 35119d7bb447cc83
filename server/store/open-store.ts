import type { PostgresOptions } from './postgres/postgres-driver.ts';
import { openSqlite, type SqliteOptions } from './sqlite/sqlite-driver.ts';
import { isPostgresUrl } from './location.ts';
import { sqlStore } from './sql-store.ts';
import type { Store } from './store.ts';

/** How a store is opened: the options of its kind of database. */
export type StoreOptions = PostgresOptions & SqliteOptions;

/**
 * Opens the store `location` names, migrated and ready: a `postgres://` / `postgresql://` URL, or a SQLite
 * file path (`:memory:` allowed). Throws a `DatabaseError` with one line saying why it cannot.
 * @example const store = await openStore('./data/analytics.db');
 */
export async function openStore(location: string, options: StoreOptions = {}): Promise<Store> {
  // pg and drizzle's PostgreSQL migrator are loaded only when used: a SQLite start does not pay for them.
  if (isPostgresUrl(location)) return sqlStore(await (await import('./postgres/postgres-driver.ts')).openPostgres(location, options));
  return sqlStore(openSqlite(location, options));
}
