import { Hono } from 'hono';
import type { Services } from '../services.ts';

/** `GET /healthz` (the database answers) and `GET /metrics` (Prometheus text). */
export function healthRoutes(services: Services): Hono {
  const app = new Hono();
  app.get('/healthz', (c) => {
    try {
      services.db.$client.prepare('SELECT 1').get();
      return c.json({ status: 'ok' });
    } catch {
      return c.json({ status: 'database unavailable' }, 503);
    }
  });
  app.get('/metrics', async (c) => {
    const body = await services.metrics.registry.metrics();
    return c.body(body, 200, { 'Content-Type': services.metrics.registry.contentType });
  });
  return app;
}
