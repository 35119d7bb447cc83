import type { MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { HTTPException } from 'hono/http-exception';
import type { FailedLogins } from './failed-login.ts';
import { bearerToken, sameSecret } from '../http.ts';

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

export interface BearerAuthOptions {
  adminToken: string;
  failedLogin: FailedLogins;
}

/**
 * Requires `Authorization: Bearer <admin token>`, compared in constant time.
 * A wrong token is counted and answered slowly; a missing one is simply refused.
 */
export function bearerAuth(options: BearerAuthOptions): MiddlewareHandler {
  const { adminToken, failedLogin } = options;
  const challenge = { 'WWW-Authenticate': 'Bearer realm="analytics admin"' };
  return async function adminBearer(c, next) {
    const given = bearerToken(c.req.header('authorization'));
    if (given === '') {
      return c.json({ error: 'send the admin token as "Authorization: Bearer <ANALYTICS_ADMIN_TOKEN>"' }, 401, challenge);
    }
    if (!sameSecret(given, adminToken)) {
      await failedLogin('api');
      return c.json({ error: 'wrong admin token' }, 401, challenge);
    }
    await next();
  };
}

/** The largest admin request body: a token form or JSON is a few KiB; anything bigger is refused unread. */
export const MAX_ADMIN_BODY_BYTES = 64 * 1024;

/** Refuses admin bodies over {@link MAX_ADMIN_BODY_BYTES} with 413 (the login form is reachable without a session). */
export function adminBodyLimit(): MiddlewareHandler {
  return bodyLimit({
    maxSize: MAX_ADMIN_BODY_BYTES,
    onError: () => {
      throw new HTTPException(413, { message: `request body over ${MAX_ADMIN_BODY_BYTES / 1024} KiB` });
    },
  });
}
