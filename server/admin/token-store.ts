import { asc, eq } from 'drizzle-orm';
import { HTTPException } from 'hono/http-exception';
import { tokens, type Token } from '../store/schema.ts';
import type { Services } from '../services.ts';
import { isMaskOf } from './secrets.ts';
import { newTokenSchema, tokenPatchSchema, type NewTokenInput, type TokenPatch } from '../tokens/token-input.ts';

type StoreServices = Pick<Services, 'db' | 'tokens' | 'outbox' | 'clock'>;

/** Every token, by id. */
export function listTokens(services: Pick<Services, 'db'>): Token[] {
  return services.db.select().from(tokens).orderBy(asc(tokens.id)).all();
}

/** One token, or undefined. */
export function findToken(services: Pick<Services, 'db'>, id: number): Token | undefined {
  return services.db.select().from(tokens).where(eq(tokens.id, id)).get();
}

/** A token id from a URL segment: a positive integer, or undefined (the caller answers 404). */
export function parseTokenId(segment: string): number | undefined {
  if (!/^[1-9]\d{0,14}$/.test(segment)) return undefined;
  return Number(segment);
}

/** The token a URL segment names; throws a 404 when the segment is no id or the token does not exist. */
export function tokenOr404(services: Pick<Services, 'db'>, segment: string | undefined): Token {
  const id = parseTokenId(segment ?? '');
  const token = id === undefined ? undefined : findToken(services, id);
  if (!token) throw new HTTPException(404, { message: 'There is no such token (it may have been deleted).' });
  return token;
}

/** Checks a new token's body (throws a ZodError naming the bad field). */
export function parseNewToken(body: unknown): NewTokenInput {
  return newTokenSchema.parse(body);
}

/**
 * Checks a partial update against the stored token (throws a ZodError naming the bad field).
 * A masked secret sent back unchanged (a read, edited and sent back) keeps the stored secret.
 */
export function parseTokenPatch(body: unknown, current: Token): TokenPatch & { id?: number } {
  if (body !== null && typeof body === 'object' && 'apiSecret' in body) {
    const { apiSecret, ...rest } = body as Record<string, unknown>;
    if (typeof apiSecret === 'string' && isMaskOf(apiSecret, current.apiSecret)) body = rest;
  }
  return tokenPatchSchema.parse(body);
}

/** Stores a new token and tells the token directory. */
export function createToken(services: StoreServices, input: NewTokenInput): Token {
  const now = services.clock();
  const token = services.db
    .insert(tokens)
    .values({ ...input, createdAt: now, updatedAt: now })
    .returning()
    .get();
  services.tokens.invalidate();
  return token;
}

/** Applies a partial update; undefined when the token does not exist. */
export function updateToken(services: StoreServices, id: number, patch: TokenPatch & { id?: number }): Token | undefined {
  // The id is the row's key: a body may repeat it, never change it.
  const { id: _sameId, ...values } = patch;
  const token = services.db
    .update(tokens)
    .set({ ...values, updatedAt: services.clock() })
    .where(eq(tokens.id, id))
    .returning()
    .get();
  services.tokens.invalidate();
  return token;
}

/** Deletes a token and (by cascade) its waiting and failed events; false when it did not exist. */
export function deleteToken(services: StoreServices, id: number): boolean {
  const changed = services.db.delete(tokens).where(eq(tokens.id, id)).run().changes;
  services.tokens.invalidate();
  services.outbox.recount();
  return changed > 0;
}
