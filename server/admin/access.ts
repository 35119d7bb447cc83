import type { MiddlewareHandler } from 'hono';
import type { FailedLogins } from './failed-login.ts';
import { sameSecret } from './secrets.ts';

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
    const header = c.req.header('authorization') ?? '';
    const match = /^Bearer[ \t]+(.+?)[ \t]*$/i.exec(header);
    if (!match?.[1]) {
      return c.json({ error: 'send the admin token as "Authorization: Bearer <ANALYTICS_ADMIN_TOKEN>"' }, 401, challenge);
    }
    if (!sameSecret(match[1], adminToken)) {
      await failedLogin('api');
      return c.json({ error: 'wrong admin token' }, 401, challenge);
    }
    await next();
  };
}
