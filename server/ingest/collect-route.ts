import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Hono, type Context } from 'hono';
import { cors } from 'hono/cors';
import { HTTPException } from 'hono/http-exception';
import { MAX_HIT_BYTES } from '../../shared/wire.ts';
import type { Clock } from '../core/clock.ts';
import type { Config } from '../core/config.ts';
import { BodyCutShortError, bodyText, bodyTooLarge, limitBody } from '../core/http.ts';
import { packagePath } from '../core/package-root.ts';
import type { Metrics } from '../core/metrics.ts';
import { pageViewParams } from '../delivery/measurement-protocol.ts';
import type { NewEvent, Outbox } from '../delivery/outbox.ts';
import type { Tokens } from '../tokens/tokens.ts';
import { deviceFromUserAgent, isBot } from './device.ts';
import { parseHit } from './hit.ts';
import { rateLimiter } from './rate-limit.ts';

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

/** What every answer to a hit carries: every origin may post, and read `X-Analytics-Ignored`. */
const HIT_HEADERS: Record<string, string> = {
  'Access-Control-Allow-Origin': '*',
  'Access-Control-Expose-Headers': 'X-Analytics-Ignored',
  'X-Content-Type-Options': 'nosniff',
  'Strict-Transport-Security': HSTS,
};

/** The answer's headers when a hit is taken but not queued, by reason. */
const withReason = (reason: IgnoreReason): Record<string, string> => ({ ...HIT_HEADERS, 'X-Analytics-Ignored': reason });
const IGNORED_HEADERS: Record<IgnoreReason, Record<string, string>> = {
  disabled: withReason('disabled'),
  bot: withReason('bot'),
  'ignored-path': withReason('ignored-path'),
  'no-token': withReason('no-token'),
};

/**
 * The body of a hit as text, refused with a 413 past {@link MAX_HIT_BYTES}. A declared length is checked from the
 * header alone: hono's `bodyLimit` first looks at `c.req.raw.body`, which makes @hono/node-server build a full web
 * Request with streams for every hit. Bodies of unknown length (chunked) still go through `bodyLimit`, which
 * reads them with the cap.
 */
function hitBodyReader(): (c: Context) => Promise<string> {
  const streamed = limitBody(MAX_HIT_BYTES);
  return async (c) => {
    const length = c.req.header('content-length');
    if (length === undefined || c.req.header('transfer-encoding') !== undefined) {
      let text = '';
      await streamed(c, async () => {
        text = await bodyText(c);
      });
      return text;
    }
    // Node's parser delivers exactly Content-Length bytes, so the header is the body's size.
    if (Number.parseInt(length, 10) > MAX_HIT_BYTES) bodyTooLarge(MAX_HIT_BYTES);
    return bodyText(c);
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

  // Preflights get hono's `cors`. A hit is one handler, not a chain of middleware: the hot path answers a plain
  // 204 with prepared headers (no web Headers object is built), and its checks are plain calls.
  app.options('/collect', cors({ origin: '*', allowMethods: ['POST'], allowHeaders: ['Content-Type'], exposeHeaders: ['X-Analytics-Ignored'], maxAge: 86400 }));
  const checkRate = rateLimiter({ max: config.rateLimitPerMinute, trustProxy: config.trustProxy });
  const readBody = hitBodyReader();
  const ignored = (reason: IgnoreReason) => {
    metrics.hitsIgnored.inc({ reason });
    return new Response(null, { status: 204, headers: IGNORED_HEADERS[reason] });
  };

  app.post('/collect', async (c) => {
    try {
      checkRate(c);
      const hit = parseHit(await readBody(c));
      metrics.hitsReceived.inc();
      if (config.disabled) return ignored('disabled');
      const userAgent = c.req.header('user-agent') ?? '';
      if (isBot(userAgent)) return ignored('bot');

      const enabled = tokens.recipients('pageViews');
      if (enabled.length === 0) return ignored('no-token');
      const receiving = enabled.filter((t) => !t.ignore.some((pattern) => pattern.test(hit.path)));
      if (receiving.length === 0) return ignored('ignored-path');

      const occurredAt = clock();
      const params = pageViewParams(hit, config.pageOrigin, occurredAt);
      const device = deviceFromUserAgent(userAgent, hit.language);
      const events: NewEvent[] = receiving.map((t) => ({ tokenId: t.token.id, name: 'page_view', params, device, occurredAt }));
      // The 204 is a promise that the hit is on disk: answer only once the group commit is done.
      await outbox.add(events);
      return new Response(null, { status: 204, headers: HIT_HEADERS });
    } catch (error) {
      // The app's error handler answers (400, 413, 429, 503); the answer carries the hit's headers too.
      if (error instanceof HTTPException) {
        metrics.hitsRefused.inc({ reason: error instanceof BodyCutShortError ? 'cut-short' : (REFUSED[error.status] ?? String(error.status)) });
      }
      for (const name in HIT_HEADERS) c.header(name, HIT_HEADERS[name]);
      throw error;
    }
  });
  return app;
}
