import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Hono, type Context, type MiddlewareHandler } from 'hono';
import { cors } from 'hono/cors';
import { HTTPException } from 'hono/http-exception';
import { MAX_HIT_BYTES } from '../../shared/wire.ts';
import type { Clock } from '../core/clock.ts';
import type { Config } from '../core/config.ts';
import { bodyTooLarge, limitBody } from '../core/http.ts';
import { packagePath } from '../core/package-root.ts';
import type { Metrics } from '../core/metrics.ts';
import { pageViewParams } from '../delivery/measurement-protocol.ts';
import type { NewEvent, Outbox } from '../delivery/outbox.ts';
import type { Tokens } from '../tokens/tokens.ts';
import { deviceFromUserAgent, isBot } from './device.ts';
import { parseHit } from './hit.ts';
import { rateLimit } from './rate-limit.ts';

/** What `/collect` works with. */
export interface CollectDeps {
  config: Pick<Config, 'disabled' | 'pageOrigin' | 'rateLimitPerMinute' | 'trustProxy'>;
  metrics: Metrics;
  outbox: Pick<Outbox, 'add'>;
  tokens: Pick<Tokens, 'recipients'>;
  clock: Clock;
}

/** Why a well-formed hit was answered 204 but not queued (the `X-Analytics-Ignored` header). */
export type IgnoreReason = 'disabled' | 'bot' | 'ignored-path' | 'no-token';

/** The `reason` label of `analytics_hits_refused_total`, by the status a hit was refused with. */
const REFUSED: Partial<Record<number, string>> = { 400: 'invalid', 413: 'too-large', 429: 'rate-limited' };

/** As the app-wide security headers send it; these two routes set their own headers. */
const HSTS = 'max-age=15552000; includeSubDomains';

const SNIPPET_PATH = packagePath('dist', 'analytics.js');

interface Snippet {
  body: string;
  etag: string;
}

function loadSnippet(): Snippet | undefined {
  try {
    const body = readFileSync(SNIPPET_PATH, 'utf8');
    return { body, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` };
  } catch {
    return undefined;
  }
}

/**
 * Refuses bodies over {@link MAX_HIT_BYTES} with a 413. A declared length is checked from the header alone:
 * hono's `bodyLimit` first looks at `c.req.raw.body`, which makes @hono/node-server build a full web Request
 * with streams for every hit (a tenth of the collector's time under load). Bodies of unknown length (chunked)
 * still go through `bodyLimit`, which reads them with the cap.
 */
function hitBodyLimit(): MiddlewareHandler {
  const streamed = limitBody(MAX_HIT_BYTES);
  return async function hitBodyLimit(c, next) {
    const length = c.req.header('content-length');
    if (length === undefined || c.req.header('transfer-encoding') !== undefined) return streamed(c, next);
    // Node's parser delivers exactly Content-Length bytes, so the header is the body's size.
    if (Number.parseInt(length, 10) > MAX_HIT_BYTES) bodyTooLarge(MAX_HIT_BYTES);
    await next();
  };
}

/**
 * CORS for `/collect`: every origin may post, and read `X-Analytics-Ignored`. Preflights get hono's `cors`;
 * other requests get the same two headers it would set, but as prepared headers: hono's `cors` sets them on
 * `c.res` before the handler runs, which builds a Response early and merges it into the handler's again.
 */
function collectCors(): MiddlewareHandler {
  const preflight = cors({ origin: '*', allowMethods: ['POST'], allowHeaders: ['Content-Type'], exposeHeaders: ['X-Analytics-Ignored'], maxAge: 86400 });
  return async function collectCors(c, next) {
    if (c.req.method === 'OPTIONS') return preflight(c, next);
    c.header('Access-Control-Allow-Origin', '*');
    c.header('Access-Control-Expose-Headers', 'X-Analytics-Ignored');
    c.header('X-Content-Type-Options', 'nosniff');
    c.header('Strict-Transport-Security', HSTS);
    await next();
  };
}

/** `GET /analytics.js` (the snippet) and `POST /collect` (page-view hits). */
export function collectRoutes(services: CollectDeps): Hono {
  const { config, metrics, outbox, tokens, clock } = services;
  const app = new Hono();
  let snippet: Snippet | undefined;

  app.get('/analytics.js', (c) => {
    snippet ??= loadSnippet();
    if (!snippet) throw new HTTPException(404, { message: 'the snippet is not built: run npm run build' });
    c.header('ETag', snippet.etag);
    // The URL carries no version, so a day of caching plus revalidation by ETag.
    c.header('Cache-Control', 'public, max-age=86400, stale-while-revalidate=604800');
    c.header('Cross-Origin-Resource-Policy', 'cross-origin');
    c.header('X-Content-Type-Options', 'nosniff');
    c.header('Strict-Transport-Security', HSTS);
    if (c.req.header('if-none-match') === snippet.etag) return c.body(null, 304);
    return c.body(snippet.body, 200, { 'Content-Type': 'text/javascript; charset=utf-8' });
  });

  const ignored = (c: Context, reason: IgnoreReason) => {
    metrics.hitsIgnored.inc({ reason });
    c.header('X-Analytics-Ignored', reason);
    return c.body(null, 204);
  };

  app.use('/collect', collectCors());
  app.post(
    '/collect',
    async function countRefusedHits(c, next) {
      await next();
      if (c.error instanceof HTTPException) metrics.hitsRefused.inc({ reason: REFUSED[c.error.status] ?? String(c.error.status) });
    },
    rateLimit({ max: config.rateLimitPerMinute, trustProxy: config.trustProxy }),
    hitBodyLimit(),
    async (c) => {
      const hit = parseHit(await c.req.text());
      metrics.hitsReceived.inc();
      if (config.disabled) return ignored(c, 'disabled');
      const userAgent = c.req.header('user-agent') ?? '';
      if (isBot(userAgent)) return ignored(c, 'bot');

      const enabled = tokens.recipients('pageViews');
      if (enabled.length === 0) return ignored(c, 'no-token');
      const receiving = enabled.filter((t) => !t.ignore.some((pattern) => pattern.test(hit.path)));
      if (receiving.length === 0) return ignored(c, 'ignored-path');

      const occurredAt = clock();
      const params = pageViewParams(hit, config.pageOrigin, occurredAt);
      const device = deviceFromUserAgent(userAgent, hit.language);
      const events: NewEvent[] = receiving.map((t) => ({ tokenId: t.token.id, name: 'page_view', params, device, occurredAt }));
      // The 204 is a promise that the hit is on disk: answer only once the group commit is done.
      await outbox.add(events);
      return c.body(null, 204);
    },
  );
  return app;
}
