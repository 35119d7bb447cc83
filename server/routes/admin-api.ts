import { Hono } from 'hono';
import type { Services } from '../services.ts';

/** The JSON admin API under `/api/admin`. */
export function adminApiRoutes(_services: Services): Hono {
  return new Hono();
}
