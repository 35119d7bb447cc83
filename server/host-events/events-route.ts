import { Hono } from 'hono';
import { z } from 'zod';
import type { Config } from '../core/config.ts';
import { requireBearer, type CredentialGuard } from '../core/credential-guard.ts';
import { bodyText, limitBody, parseJsonBody } from '../core/http.ts';
import { parseHostStats, saveHostStats, type DailyStatsDeps } from './daily-stats.ts';
import { analyticsEvents, requiredHostText } from './task-events.ts';

/** What the two routes work with. */
export interface EventsRouteDeps extends DailyStatsDeps {
  config: Pick<Config, 'disabled' | 'eventsKey' | 'trustProxy'>;
}

/** Bodies of `POST /api/events` and `PUT /api/stats` are small; anything bigger is refused unread. */
export const MAX_EVENTS_BODY_BYTES = 16 * 1024;

// Strict: a misspelt field (say `eventType`) is refused rather than silently ignored.
export const eventBodySchema = z.strictObject({
  namespace: requiredHostText,
  task: requiredHostText,
  label: z.string().optional(),
  result: z.string().optional(),
  value: z.union([z.number(), z.boolean()]).optional(),
  type: z.enum(['task', 'stats']).optional(),
});

/** `POST /api/events` and `PUT /api/stats`: the host's task events and numbers, behind `ANALYTICS_EVENTS_KEY`. */
export function eventsRoutes(services: EventsRouteDeps, guard: CredentialGuard): Hono {
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
    limitBody(MAX_EVENTS_BODY_BYTES),
  ] as const;

  app.post('/events', ...guarded, async (c) => {
    const body = eventBodySchema.parse(parseJsonBody(await bodyText(c), 'body must be JSON'));
    const events = analyticsEvents(services, {
      namespace: body.namespace,
      task: body.task,
      label: body.label,
      result: body.result,
      value: body.value,
      eventType: body.type,
    });
    await services.outbox.add(events);
    return c.json({ queued: events.length }, 202);
  });

  app.put('/stats', ...guarded, async (c) => {
    const json = parseJsonBody(await bodyText(c), 'body must be JSON');
    await saveHostStats(services, parseHostStats(json));
    return c.body(null, 204);
  });

  return app;
}
