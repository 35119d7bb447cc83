import { Hono } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { secureHeaders } from 'hono/secure-headers';
import { AggregatorRegistry } from 'prom-client';
import { ZodError } from 'zod';
import { adminApiRoutes } from './admin/api-routes.ts';
import { openApiRoutes } from './admin/openapi.ts';
import { adminRoutes } from './admin/pages-routes.ts';
import { CredentialGuard, requireBearer } from './core/credential-guard.ts';
import { describeZodError } from './core/http.ts';
import { internalErrorLog, rateLimitedLine, REPEATED_LOG_EVERY_MS } from './core/log.ts';
import { eventsRoutes } from './host-events/events-route.ts';
import { InvalidEventError } from './host-events/task-events.ts';
import { collectRoutes } from './ingest/collect-route.ts';
import type { Services } from './services.ts';
import { RETRY_AFTER_S, StoreUnavailableError } from './store/errors.ts';

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
  app.route('/', openApiRoutes(services.config));
  app.route('/admin', adminRoutes(services, guard));
  app.notFound((c) => c.json({ error: 'not found' }, 404));
  // While the database does not answer, every request that needs it is a 503: said in the log at most once every
  // 10 s with a count, so that requests anybody can send do not fill the log (or the disk that may be full already).
  const noteUnavailable = rateLimitedLine(services.clock, REPEATED_LOG_EVERY_MS);
  // An error nobody expected is a bug to see, with its stack; should anybody's requests find one to repeat, the
  // log still gets one such line every 10 s per route and kind, with how many more there were.
  const noteInternal = internalErrorLog(services.log, services.clock, REPEATED_LOG_EVERY_MS);
  app.onError((error, c) => {
    if (error instanceof HTTPException) {
      return c.json({ error: error.message || 'request refused' }, error.status);
    }
    // Bad input, from a schema or from the host's event, is the caller's mistake: a 400 saying what is wrong.
    if (error instanceof ZodError) {
      return c.json({ error: describeZodError(error) }, 400);
    }
    if (error instanceof InvalidEventError) {
      return c.json({ error: error.message }, 400);
    }
    // The database does not answer (gone, full, locked): a passing condition, never a 500 or a hang.
    if (error instanceof StoreUnavailableError) {
      noteUnavailable((n) => {
        const more = n > 1 ? ` (${n} requests answered 503 since the last line)` : '';
        services.log.warn(`${c.req.method} ${c.req.path}: ${error.message}${more}`);
      });
      return c.json({ error: `the database is unavailable (${error.message}); try again later` }, 503, { 'Retry-After': String(RETRY_AFTER_S) });
    }
    noteInternal({ method: c.req.method, route: c.req.routePath }, error);
    return c.json({ error: 'internal error' }, 500);
  });
  return app;
}

/** `GET /healthz` (the database answers) and `GET /metrics` (Prometheus text, behind `ANALYTICS_METRICS_TOKEN`). */
function healthRoutes(services: Pick<Services, 'store' | 'config' | 'metrics' | 'thread'>, guard: CredentialGuard): Hono {
  const app = new Hono();
  // One look at the database at a time, however many ask: while writes fail, a look is a write that may wait out
  // the lock (5 s), on the connection the hits' commits also wait for; anybody may call /healthz, so requests that
  // come while a look is on its way share its answer instead of each queueing one more.
  let looking: Promise<void> | undefined;
  const ping = () => (looking ??= services.store.ping().finally(() => (looking = undefined)));
  app.get('/healthz', async (c) => {
    try {
      await ping();
      return c.json({ status: 'ok' });
    } catch {
      return c.json({ status: 'database unavailable' }, 503, { 'Retry-After': String(RETRY_AFTER_S) });
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
    const { registry } = services.metrics;
    // A relay in a thread of its own counts there: its counters are added to this thread's.
    const body =
      services.thread !== undefined
        ? await AggregatorRegistry.aggregate([await registry.getMetricsAsJSON(), await services.thread.metrics()]).metrics()
        : await registry.metrics();
    return c.body(body, 200, { 'Content-Type': registry.contentType });
  });
  return app;
}
