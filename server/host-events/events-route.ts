import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { HTTPException } from 'hono/http-exception';
import { z } from 'zod';
import { parseHostStats, saveHostStats } from './daily-stats.ts';
import { analyticsEvents, InvalidEventError } from './task-events.ts';
import { requireBearer, type CredentialGuard } from '../core/credential-guard.ts';
import { parseJsonBody } from '../core/http.ts';
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
export function eventsRoutes(services: Services, guard: CredentialGuard): Hono {
  const app = new Hono();
  const key = services.config.eventsKey;
  // No key, no routes: they answer 404 like any unknown path.
  if (key === undefined) return app;

  // Only these two routes: the app is mounted at /api, beside the admin API.
  const guarded = [
    requireBearer({
      secret: key,
      guard,
      surface: 'events',
      trustProxy: services.config.trustProxy,
      missing: 'missing or wrong bearer key',
      wrong: 'missing or wrong bearer key',
    }),
    bodyLimit({ maxSize: MAX_EVENTS_BODY_BYTES, onError: tooLarge }),
  ] as const;

  app.post('/events', ...guarded, async (c) => {
    const body = eventBodySchema.parse(parseJsonBody(await c.req.text(), 'body must be JSON'));
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

  app.put('/stats', ...guarded, async (c) => {
    const json = parseJsonBody(await c.req.text(), 'body must be JSON');
    saveHostStats(services, hostInput(() => parseHostStats(json)));
    return c.body(null, 204);
  });

  return app;
}

function tooLarge(): never {
  throw new HTTPException(413, { message: `body over ${MAX_EVENTS_BODY_BYTES} bytes` });
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
