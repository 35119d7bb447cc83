import { and, eq, gt, lte } from 'drizzle-orm';
import type { Db } from '../store/database.ts';
import { adminSessions } from '../store/schema.ts';
import type { SessionStore } from './session.ts';

/** Admin sessions in the database's `admin_sessions` table. */
export function databaseSessionStore(db: Db): SessionStore {
  return {
    add(idHash, expiresAt, now) {
      db.transaction((tx) => {
        tx.delete(adminSessions).where(lte(adminSessions.expiresAt, now)).run();
        tx.insert(adminSessions).values({ idHash, expiresAt }).run();
      });
    },
    has(idHash, now) {
      return db.select({ idHash: adminSessions.idHash }).from(adminSessions).where(and(eq(adminSessions.idHash, idHash), gt(adminSessions.expiresAt, now))).get() !== undefined;
    },
    remove(idHash) {
      db.delete(adminSessions).where(eq(adminSessions.idHash, idHash)).run();
    },
  };
}
