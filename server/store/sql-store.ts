import type { SqlDriver } from './sql-driver.ts';
import { installQueries } from './sql-install.ts';
import { outboxQueries } from './sql-outbox.ts';
import { reportQueries } from './sql-reports.ts';
import { tokenQueries } from './sql-tokens.ts';
import type { Store } from './store.ts';

/**
 * The {@link Store} over either driver: one set of SQL for SQLite and PostgreSQL, with the few differences
 * (bulk inserts, row locks, id lists) asked of the driver's dialect.
 */
export function sqlStore(db: SqlDriver): Store {
  return {
    dialect: db.dialect,
    async ping() {
      // Reads may work while writes do not (a full disk, a lock held too long): while writes failed, try one.
      if (db.trouble() !== undefined) await db.probeWrite();
      else await db.query('SELECT 1 AS one');
    },
    trouble: () => db.trouble(),
    close: () => db.close(),
    ...installQueries(db),
    ...tokenQueries(db),
    ...outboxQueries(db),
    ...reportQueries(db),
  };
}
