import { createHash, timingSafeEqual } from 'node:crypto';
import { Hono, type MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { HTTPException } from 'hono/http-exception';
import { z } from 'zod';
import { parseHostStats, saveHostStats } from '../daily-stats.ts';
import { analyticsEvents, InvalidEventError } from '../events.ts';
import type { Services } from '../services.ts';

/** Bodies of `POST /api/events` and `PUT /api/stats` are small; anything bigger is refused unread. */
export const MAX_EVENTS_BODY_BYTES = 16 * 1024;

// Strict: a misspelt field (say `eventType`) is refused rather than silently ignored.
const eventBodySchema = z.strictObject({
  namespace: z.string(),
  task: z.string(),
  label: z.string().optional(),
  result: z.string().optional(),
  value: z.union([z.number(), z.boolean()]).optional(),
  type: z.enum(['task', 'stats']).optional(),
});

/** `POST /api/events` and `PUT /api/stats`: the host's task events and numbers, behind `ANALYTICS_EVENTS_KEY`. */
export function eventsRoutes(services: Services): Hono {
  const app = new Hono();
  const key = services.config.eventsKey;
  // No key, no routes: they answer 404 like any unknown path.
  if (key === undefined) return app;

  const guard = [requireBearer(key), bodyLimit({ maxSize: MAX_EVENTS_BODY_BYTES, onError: tooLarge })] as const;

  app.post('/events', ...guard, async (c) => {
    const body = eventBodySchema.parse(await readJson(c.req.raw));
    const events = hostInput(() =>
      analyticsEvents(services, {
        namespace: body.namespace,
        task: body.task,
        label: body.label,
        result: body.result,
        value: body.value,
        eventType: body.type,
      }),
    );
    await services.outbox.add(events);
    return c.json({ queued: events.length }, 202);
  });

  app.put('/stats', ...guard, async (c) => {
    const json = await readJson(c.req.raw);
    saveHostStats(services, hostInput(() => parseHostStats(json)));
    return c.body(null, 204);
  });

  return app;
}

/**
 * Lets a request through only with `Authorization: Bearer <secret>`; anything else is a 401.
 * Both sides are hashed first, so the comparison takes the same time whatever the length or content.
 */
export function requireBearer(secret: string): MiddlewareHandler {
  const expected = sha256(secret);
  return async function requireBearer(c, next) {
    const match = /^Bearer[ ]+(.+)$/i.exec(c.req.header('Authorization') ?? '');
    if (!match?.[1] || !timingSafeEqual(sha256(match[1].trim()), expected)) {
      return c.json({ error: 'missing or wrong bearer key' }, 401, { 'WWW-Authenticate': 'Bearer' });
    }
    await next();
  };
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

function tooLarge(): never {
  throw new HTTPException(413, { message: `body over ${MAX_EVENTS_BODY_BYTES} bytes` });
}

/** The body as JSON, whatever the Content-Type (curl's `-d` says form data); not JSON is a 400. */
async function readJson(request: Request): Promise<unknown> {
  const text = await request.text();
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new HTTPException(400, { message: 'body must be JSON' });
  }
}

/** Runs `work`, turning an invalid event (the host's mistake) into a 400 with the reason. */
function hostInput<T>(work: () => T): T {
  try {
    return work();
  } catch (error) {
    if (error instanceof InvalidEventError) throw new HTTPException(400, { message: error.message });
    throw error;
  }
}
