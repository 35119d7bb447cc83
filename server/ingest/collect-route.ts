import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Hono, type Context } from 'hono';
import { cors } from 'hono/cors';
import { HTTPException } from 'hono/http-exception';
import { clientAddress } from '../core/client-address.ts';
import { bodyText, limitBody } from '../core/http.ts';
import { packagePath } from '../core/package-root.ts';
import { HIT_HEADERS, HSTS, type HitRequest, type HitTaker } from './take-hit.ts';

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
 * A hit through the app's route. A body of declared length is read at once (its length was judged from the header):
 * hono's `bodyLimit` first looks at `c.req.raw.body`, which makes @hono/node-server build a full web Request with
 * streams. A body of unknown length (chunked) goes through `bodyLimit`, which reads it with the cap.
 */
function honoHit(c: Context): HitRequest {
  return {
    header: (name) => c.req.header(name),
    clientAddress: (trustProxy) => clientAddress(c, trustProxy),
    async text(maxBytes) {
      if (c.req.header('content-length') !== undefined && c.req.header('transfer-encoding') === undefined) return bodyText(c);
      let text = '';
      await limitBody(maxBytes)(c, async () => {
        text = await bodyText(c);
      });
      return text;
    },
  };
}

/** `GET /analytics.js` (the snippet) and `POST /collect` (page-view hits). */
export function collectRoutes(hits: HitTaker): Hono {
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
  app.post('/collect', async (c) => {
    try {
      return new Response(null, { status: 204, headers: await hits.take(honoHit(c)) });
    } catch (error) {
      // The app's error handler answers (400, 413, 429, 503); the answer carries the hit's headers too.
      for (const name in HIT_HEADERS) c.header(name, HIT_HEADERS[name]);
      throw error;
    }
  });
  return app;
}
