import { Hono } from 'hono';
import type { Services } from '../services.ts';

/** The admin pages (HTML) under `/admin`. */
export function adminRoutes(_services: Services): Hono {
  return new Hono();
}
