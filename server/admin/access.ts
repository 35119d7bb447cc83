import type { MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { HTTPException } from 'hono/http-exception';

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
  return bodyLimit({
    maxSize: MAX_ADMIN_BODY_BYTES,
    onError: () => {
      throw new HTTPException(413, { message: `request body over ${MAX_ADMIN_BODY_BYTES / 1024} KiB` });
    },
  });
}
