import type { MiddlewareHandler } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { limitBody } from '../core/http.ts';
import { parseTokenId } from '../tokens/token-input.ts';
import type { Token, Tokens } from '../tokens/tokens.ts';

/**
 * Hides the admin entirely while no admin token is configured: every route answers the app's usual 404,
 * so a scan cannot even tell that an admin exists.
 */
export function adminEnabled(options: { adminToken: string | undefined }): MiddlewareHandler {
  const on = options.adminToken !== undefined;
  return async function adminOff(c, next) {
    if (!on) return c.json({ error: 'not found' }, 404);
    await next();
  };
}

/** The largest admin request body: a token form or JSON is a few KiB; anything bigger is refused unread. */
export const MAX_ADMIN_BODY_BYTES = 64 * 1024;

/** Refuses admin bodies over {@link MAX_ADMIN_BODY_BYTES} with 413 (the login form is reachable without a session). */
export function adminBodyLimit(): MiddlewareHandler {
  return limitBody(MAX_ADMIN_BODY_BYTES);
}

/** The token a URL segment names; a 404 when the segment is no id or the token does not exist. */
export async function tokenOr404(tokens: Pick<Tokens, 'find'>, segment: string | undefined): Promise<Token> {
  const id = parseTokenId(segment);
  const token = id === undefined ? undefined : await tokens.find(id);
  if (!token) throw new HTTPException(404, { message: 'There is no such token (it may have been deleted).' });
  return token;
}
