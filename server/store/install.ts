import { eq } from 'drizzle-orm';
import { v4 as uuidv4 } from 'uuid';
import type { Db } from './database.ts';
import { install, tokens } from './schema.ts';
import { PLACEHOLDER_MEASUREMENT_ID, TEAM_TOKEN } from '../tokens/team-token.ts';

/** Who this install is, as reported to GA. */
export interface Identity {
  uuid: string;
  createdAt: number;
}

/**
 * Returns the install's identity, making it (a random UUIDv4) and preloading token 1 on first start.
 * The two happen in one transaction, so token 1 is preloaded exactly once: a deleted token 1 stays deleted.
 */
export function ensureIdentity(db: Db, now: number = Date.now()): Identity {
  return db.transaction((tx) => {
    const existing = tx.select().from(install).where(eq(install.id, 1)).get();
    if (existing) {
      refreshTeamToken(tx as unknown as Db, now);
      return { uuid: existing.uuid, createdAt: existing.createdAt };
    }
    const created = { id: 1, uuid: uuidv4(), createdAt: now };
    tx.insert(install).values(created).run();
    tx.insert(tokens)
      .values({
        id: 1,
        name: TEAM_TOKEN.name,
        measurementId: TEAM_TOKEN.measurementId,
        apiSecret: TEAM_TOKEN.apiSecret,
        ignorePaths: [...TEAM_TOKEN.ignorePaths],
        createdAt: now,
        updatedAt: now,
      })
      .run();
    return { uuid: created.uuid, createdAt: now };
  });
}

/** Once the team's real id ships, installs still holding the placeholder take it on their next start. */
function refreshTeamToken(db: Db, now: number): void {
  if (TEAM_TOKEN.measurementId === PLACEHOLDER_MEASUREMENT_ID) return;
  const token = db.select().from(tokens).where(eq(tokens.id, 1)).get();
  if (!token || token.measurementId !== PLACEHOLDER_MEASUREMENT_ID) return;
  db.update(tokens)
    .set({ measurementId: TEAM_TOKEN.measurementId, apiSecret: TEAM_TOKEN.apiSecret, updatedAt: now })
    .where(eq(tokens.id, 1))
    .run();
}
