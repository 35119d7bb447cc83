import { Hono } from 'hono';
import type { Services } from '../services.ts';

/** `POST /api/events` and `PUT /api/stats`: the host's task events and numbers. */
export function eventsRoutes(_services: Services): Hono {
  return new Hono();
}
