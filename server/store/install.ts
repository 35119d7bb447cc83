import { eq } from 'drizzle-orm';
import { v4 as uuidv4 } from 'uuid';
import type { Db } from './database.ts';
import { install, tokens } from './schema.ts';

/** The token every new install starts with (token 1), and the id it had while it was a placeholder. */
export interface FirstToken {
  name: string;
  measurementId: string;
  apiSecret: string;
  ignorePaths: readonly string[];
  /** A stored token 1 still holding this id takes the current id and secret at start (the real one shipped). */
  placeholderId: string;
}

/** Who this install is, as reported to GA. */
export interface Identity {
  uuid: string;
  createdAt: number;
}

/**
 * Returns the install's identity, making it (a random UUIDv4) and preloading token 1 on first start.
 * The two happen in one transaction, so token 1 is preloaded exactly once: a deleted token 1 stays deleted.
 */
export function ensureInstall(db: Db, firstToken: FirstToken, now: number = Date.now()): Identity {
  return db.transaction((tx) => {
    const existing = tx.select().from(install).where(eq(install.id, 1)).get();
    if (existing) {
      refreshFirstToken(tx as unknown as Db, firstToken, now);
      return { uuid: existing.uuid, createdAt: existing.createdAt };
    }
    const created = { id: 1, uuid: uuidv4(), createdAt: now };
    tx.insert(install).values(created).run();
    tx.insert(tokens)
      .values({
        id: 1,
        name: firstToken.name,
        measurementId: firstToken.measurementId,
        apiSecret: firstToken.apiSecret,
        ignorePaths: [...firstToken.ignorePaths],
        createdAt: now,
        updatedAt: now,
      })
      .run();
    return { uuid: created.uuid, createdAt: now };
  });
}

/** Once the team's real id ships, installs still holding the placeholder take it on their next start. */
function refreshFirstToken(db: Db, firstToken: FirstToken, now: number): void {
  if (firstToken.measurementId === firstToken.placeholderId) return;
  const token = db.select().from(tokens).where(eq(tokens.id, 1)).get();
  if (!token || token.measurementId !== firstToken.placeholderId) return;
  db.update(tokens)
    .set({ measurementId: firstToken.measurementId, apiSecret: firstToken.apiSecret, updatedAt: now })
    .where(eq(tokens.id, 1))
    .run();
}
