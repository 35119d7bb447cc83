import { openPostgres, type PostgresOptions } from './postgres/postgres-driver.ts';
import { openSqlite } from './sqlite/sqlite-driver.ts';
import { sqlStore } from './sql-store.ts';
import type { Store } from './store.ts';

/** True when `location` names a PostgreSQL database rather than a SQLite file. */
export function isPostgresUrl(location: string): boolean {
  return /^postgres(ql)?:\/\//i.test(location);
}

/**
 * Opens the store `location` names, migrated and ready: a `postgres://` / `postgresql://` URL, or a SQLite
 * file path (`:memory:` allowed). Throws a `DatabaseError` with one line saying why it cannot.
 * @example const store = await openStore('./data/analytics.db');
 */
export async function openStore(location: string, options: PostgresOptions = {}): Promise<Store> {
  const driver = isPostgresUrl(location) ? await openPostgres(location, options) : openSqlite(location);
  return sqlStore(driver);
}
