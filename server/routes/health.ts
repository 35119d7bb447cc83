import { Hono } from 'hono';
import { requireBearer, type CredentialGuard } from '../core/credential-guard.ts';
import type { Services } from '../services.ts';

/** `GET /healthz` (the database answers) and `GET /metrics` (Prometheus text, behind `ANALYTICS_METRICS_TOKEN`). */
export function healthRoutes(services: Services, guard: CredentialGuard): Hono {
  const app = new Hono();
  app.get('/healthz', (c) => {
    try {
      services.db.$client.prepare('SELECT 1').get();
      return c.json({ status: 'ok' });
    } catch {
      return c.json({ status: 'database unavailable' }, 503);
    }
  });
  const { metricsToken, trustProxy } = services.config;
  // No token, no route: it answers 404 like any unknown path.
  if (metricsToken === undefined) return app;
  const bearer = requireBearer({
    secret: metricsToken,
    guard,
    surface: 'metrics',
    trustProxy,
    realm: 'analytics metrics',
    missing: 'send the metrics token as "Authorization: Bearer <ANALYTICS_METRICS_TOKEN>"',
    wrong: 'wrong metrics token',
  });
  app.get('/metrics', bearer, async (c) => {
    const body = await services.metrics.registry.metrics();
    return c.body(body, 200, { 'Content-Type': services.metrics.registry.contentType });
  });
  return app;
}
