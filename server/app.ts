import { Hono } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { secureHeaders } from 'hono/secure-headers';
import { ZodError } from 'zod';
import { CredentialGuard } from './core/credential-guard.ts';
import { describeZodError } from './core/http.ts';
import { adminApiRoutes } from './admin/api-routes.ts';
import { adminRoutes } from './admin/pages-routes.ts';
import { collectRoutes } from './ingest/collect-route.ts';
import { eventsRoutes } from './host-events/events-route.ts';
import { healthRoutes } from './routes/health.ts';
import type { Services } from './services.ts';

/**
 * Builds the collector's HTTP app over the given services; tests call `app.request()` on it.
 * @example const app = createApp(createServices({ config }));
 */
export function createApp(services: Services): Hono {
  const app = new Hono();
  // One failed-attempt budget for every credential the app takes.
  const guard = new CredentialGuard(services);
  // The beacon endpoint and the snippet come first, so the page-oriented headers below are not computed
  // for every hit (the hot path answers an empty 204); they set the few headers that matter to them.
  app.route('/', collectRoutes(services));
  app.use(
    secureHeaders({
      contentSecurityPolicy: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] },
      crossOriginResourcePolicy: false,
      xFrameOptions: 'DENY',
      // A route that sets its own header keeps it: the admin pages need a CSP that allows their style sheet.
      overwrite: false,
    }),
  );
  app.route('/', healthRoutes(services, guard));
  app.route('/api', eventsRoutes(services, guard));
  app.route('/api/admin', adminApiRoutes(services, guard));
  app.route('/admin', adminRoutes(services, guard));
  app.notFound((c) => c.json({ error: 'not found' }, 404));
  app.onError((error, c) => {
    if (error instanceof HTTPException) {
      return c.json({ error: error.message || 'request refused' }, error.status);
    }
    if (error instanceof ZodError) {
      return c.json({ error: describeZodError(error) }, 400);
    }
    services.log.error(`${c.req.method} ${c.req.path} failed`, error);
    return c.json({ error: 'internal error' }, 500);
  });
  return app;
}
