import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { getRequestListener } from '@hono/node-server';
import { Hono } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { secureHeaders } from 'hono/secure-headers';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { AggregatorRegistry } from 'prom-client';
import { ZodError } from 'zod';
import { adminApiRoutes } from './admin/api-routes.ts';
import { openApiRoutes } from './admin/openapi.ts';
import { adminRoutes } from './admin/pages-routes.ts';
import { CredentialGuard, requireBearer } from './core/credential-guard.ts';
import { describeZodError, dropRest, RetryLaterError } from './core/http.ts';
import { internalErrorLog, rateLimitedLine, REPEATED_LOG_EVERY_MS } from './core/log.ts';
import { eventsRoutes } from './host-events/events-route.ts';
import { InvalidEventError } from './host-events/task-events.ts';
import { collectRoutes } from './ingest/collect-route.ts';
import { HIT_HEADERS, hitTaker, nodeHit, type HitTaker } from './ingest/take-hit.ts';
import type { Services } from './services.ts';
import { RETRY_AFTER_S, StoreUnavailableError } from './store/errors.ts';

/**
 * Builds the collector's HTTP app over the given services; tests call `app.request()` on it.
 * @example const app = createApp(createServices({ config }));
 */
export function createApp(services: Services): Hono {
  return createHttp(services).app;
}

/**
 * The app, and Node's request listener that serves it at the root as `npm start` does. The listener takes
 * `POST /collect` straight from Node's request, with the app's own checks, rate limit and error answers: a hit
 * then costs no web Request, Headers or Response, nor hono's routing.
 */
export function createHttp(services: Services): { app: Hono; readonly listener: RequestListener } {
  const app = new Hono();
  const hits = hitTaker(services);
  const answerError = errorAnswerer(services);
  // One failed-attempt budget for every credential the app takes.
  const guard = new CredentialGuard(services);
  // The beacon endpoint and the snippet come first, so the page-oriented headers below are not computed
  // for every hit (the hot path answers an empty 204); they set the few headers that matter to them.
  app.route('/', collectRoutes(hits));
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
  app.onError((error, c) => {
    const answer = answerError(error, { method: c.req.method, path: c.req.path, route: c.req.routePath });
    return c.json(answer.body, answer.status, answer.headers);
  });
  let listener: RequestListener | undefined;
  return {
    app,
    // Made when first asked for: making it puts @hono/node-server's faster Request and Response in the globals, as
    // its `serve()` does, which a host that only mounts `app` must not find done behind its back.
    get listener() {
      return (listener ??= nodeListener(app, services.config.host, hits, answerError));
    },
  };
}

/** The one answer to a request that failed: its status, `{ error }` as JSON, and headers such as `Retry-After`. */
interface ErrorAnswer {
  status: ContentfulStatusCode;
  body: { error: string };
  headers: Record<string, string>;
}

/** Where a request failed, for the log. */
interface FailedRequest {
  method: string;
  path: string;
  /** The route it matched, so that paths anybody can vary count as one. */
  route: string;
}

/**
 * The app's one error shape, for hono's `onError` and for `npm start`'s listener alike: a refusal is its 4xx, bad
 * input a 400 saying what is wrong, a database that does not answer a 503 with `Retry-After`, anything else a 500
 * whose stack goes to the log.
 */
function errorAnswerer(services: Pick<Services, 'log' | 'clock'>): (error: unknown, request: FailedRequest) => ErrorAnswer {
  // While the database does not answer, every request that needs it is a 503: said in the log at most once every
  // 10 s with a count, so that requests anybody can send do not fill the log (or the disk that may be full already).
  const noteUnavailable = rateLimitedLine(services.clock, REPEATED_LOG_EVERY_MS);
  // An error nobody expected is a bug to see, with its stack; should anybody's requests find one to repeat, the
  // log still gets one such line every 10 s per route and kind, with how many more there were.
  const noteInternal = internalErrorLog(services.log, services.clock, REPEATED_LOG_EVERY_MS);
  return (error, request) => {
    if (error instanceof HTTPException) {
      const headers: Record<string, string> = error instanceof RetryLaterError ? { 'Retry-After': String(error.retryAfterS) } : {};
      return { status: error.status as ContentfulStatusCode, body: { error: error.message || 'request refused' }, headers };
    }
    // Bad input, from a schema or from the host's event, is the caller's mistake: a 400 saying what is wrong.
    if (error instanceof ZodError) return { status: 400, body: { error: describeZodError(error) }, headers: {} };
    if (error instanceof InvalidEventError) return { status: 400, body: { error: error.message }, headers: {} };
    // The database does not answer (gone, full, locked): a passing condition, never a 500 or a hang.
    if (error instanceof StoreUnavailableError) {
      noteUnavailable((n) => {
        const more = n > 1 ? ` (${n} requests answered 503 since the last line)` : '';
        services.log.warn(`${request.method} ${request.path}: ${error.message}${more}`);
      });
      return {
        status: 503,
        body: { error: `the database is unavailable (${error.message}); try again later` },
        headers: { 'Retry-After': String(RETRY_AFTER_S) },
      };
    }
    noteInternal({ method: request.method, route: request.route }, error);
    return { status: 500, body: { error: 'internal error' }, headers: {} };
  };
}

/** `POST /collect`, with or without a query string, as hono's router matches it. */
function isHit(req: IncomingMessage): boolean {
  const url = req.url ?? '';
  return req.method === 'POST' && (url === '/collect' || url.startsWith('/collect?'));
}

const HIT_REQUEST: FailedRequest = { method: 'POST', path: '/collect', route: '/collect' };

/**
 * Node's request listener for the app at the root. A hit, the one request that comes thousands of times a second,
 * is taken straight from Node's request by the same {@link HitTaker} as the app's route and answered with the
 * same headers and error shape; every other request goes through @hono/node-server to the app.
 */
function nodeListener(
  app: Hono,
  hostname: string,
  hits: HitTaker,
  answerError: (error: unknown, request: FailedRequest) => ErrorAnswer,
): RequestListener {
  // As `serve()` does: hono's answers then skip building a web Response (about half the CPU of a request to them).
  const toApp = getRequestListener(app.fetch, { hostname });
  const take = async (req: IncomingMessage, res: ServerResponse) => {
    let taken: Readonly<Record<string, string>>;
    try {
      taken = await hits.take(nodeHit(req));
    } catch (error) {
      const answer = answerError(error, HIT_REQUEST);
      const body = JSON.stringify(answer.body);
      const headers = { ...HIT_HEADERS, ...answer.headers, 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(body)) };
      res.writeHead(answer.status, headers).end(body);
      // Refused before its end (too large, or over the rate limit): the rest is not waited for.
      dropRest(req);
      return;
    }
    res.writeHead(204, taken).end();
  };
  return (req, res) => {
    if (!isHit(req)) return void toApp(req, res);
    // Answering fails only when the connection is gone: nothing more can be said on it.
    take(req, res).catch(() => res.destroy());
  };
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
