import { eq } from 'drizzle-orm';
import { randomBytes } from 'node:crypto';
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
  /** Random, made once; keys the admin's signatures. Never sent, shown or logged. */
  signingSecret: string;
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
      let signingSecret = existing.signingSecret;
      if (signingSecret === null) {
        // An install made before the secret existed gets one now.
        signingSecret = newSigningSecret();
        tx.update(install).set({ signingSecret }).where(eq(install.id, 1)).run();
      }
      return { uuid: existing.uuid, createdAt: existing.createdAt, signingSecret };
    }
    const created = { id: 1, uuid: uuidv4(), createdAt: now, signingSecret: newSigningSecret() };
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
    return { uuid: created.uuid, createdAt: now, signingSecret: created.signingSecret };
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

function newSigningSecret(): string {
  return randomBytes(32).toString('base64url');
}
