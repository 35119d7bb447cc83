import { Hono } from 'hono';
import type { Services } from '../services.ts';

/** `GET /analytics.js` (the snippet) and `POST /collect` (page-view hits). */
export function collectRoutes(_services: Services): Hono {
  return new Hono();
}
