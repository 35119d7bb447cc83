import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DeviceFields, EventParams } from '../../server/store/types.ts';
import { addTestToken, DIALECTS, makeTestApp, metricsText, outboxEvents, requestInit, serveListener, type TestAppOptions, type TestRequest, type TestServices } from '../helpers/app.ts';
import { startFakeGa, type FakeGa } from '../../harness/fake-ga.ts';

const CHROME =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36';
const HEADLESS =
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36';

let ga: FakeGa;
const opened: TestServices[] = [];
beforeEach(async () => {
  ga = await startFakeGa();
});
afterEach(async () => {
  for (const services of opened.splice(0)) {
    await services.relay.stop();
    await services.store.close();
  }
  await ga.close();
});

/** The outbox's rows in the order they were queued, params and device read back from their JSON. */
async function outboxRows(services: TestServices) {
  const rows = await outboxEvents(services);
  return rows.map((r) => ({
    tokenId: r.token_id,
    name: r.name,
    params: JSON.parse(r.params) as EventParams,
    device: r.device === null ? null : (JSON.parse(r.device) as DeviceFields),
    status: r.status,
  }));
}

/**
 * The two ways a hit comes in: the app's route (a host that mounts `app`, and `app.request()`), and Node's request
 * listener, which `npm start` serves and which takes `POST /collect` without hono.
 */
const WAYS = ['the app', 'the listener'] as const;
type Way = (typeof WAYS)[number];

async function setup(options: TestAppOptions = {}, way: Way = 'the app') {
  const made = await makeTestApp({ ...options, config: { gaUrl: ga.url, appVersion: '9.9.9', pageOrigin: 'https://auth.example.org', ...options.config } });
  opened.push(made.services);
  const served = way === 'the listener' ? await serveListener(made.listener()) : undefined;
  const send = (path: string, init: TestRequest) => (served ? served.request(path, init) : made.app.request(path, requestInit(init)));
  const post = (body: string, headers: Record<string, string | string[]> = {}) =>
    send('/collect', { method: 'POST', body, headers: { 'Content-Type': 'text/plain;charset=UTF-8', 'User-Agent': CHROME, ...headers } });
  const queued = () => outboxRows(made.services);
  return { ...made, send, post, queued };
}

const hit = (fields: Record<string, unknown> = {}) => JSON.stringify({ path: '/dashboard', title: 'Dashboard', language: 'en-GB', ...fields });

describe.each(DIALECTS.flatMap((database) => WAYS.map((way) => [database, way] as const)))('POST /collect on %s, through %s', (database, way) => {
  it('queues a page view for every token with page views on, and the relay delivers it as GA expects', async () => {
    const { services, post, queued } = await setup({ database }, way);
    const one = await addTestToken(services);
    const two = await addTestToken(services);
    await addTestToken(services, { sendPageViews: false });

    const res = await post(hit());
    expect(res.status).toBe(204);
    expect(res.headers.get('x-analytics-ignored')).toBeNull();
    // The 204 comes once the hit is stored: it is there, for each token, as the answer arrives.
    const rows = await queued();
    expect(rows.map((row) => row.tokenId).sort((a, b) => a - b)).toEqual([one.id, two.id]);
    expect(rows.map((row) => [row.name, row.status])).toEqual([
      ['page_view', 'pending'],
      ['page_view', 'pending'],
    ]);

    await services.relay.drain();
    const delivered = ga.delivered();
    expect(delivered.map((e) => e.measurementId).sort()).toEqual([one.measurementId, two.measurementId].sort());
    for (const event of delivered) {
      expect(event).toMatchObject({
        name: 'page_view',
        clientId: services.identity.uuid,
        appVersion: '9.9.9',
        device: { category: 'desktop', language: 'en-GB', operating_system: 'Windows', operating_system_version: '10', browser: 'Chrome', browser_version: '120.0.0.0' },
        params: {
          page_location: 'https://auth.example.org/dashboard',
          page_title: 'Dashboard',
          language: 'en-GB',
          engagement_time_msec: 1,
          session_id: expect.any(Number),
        },
      });
    }
    const raw = ga.accepted().map((r) => r.rawBody).join('\n');
    expect(raw).not.toContain('Mozilla'); // never the raw User-Agent
    expect(raw).not.toContain('127.0.0.1'); // never an address
    expect(await queued()).toEqual([]);
  });

  it('counts hits received and ignored by reason in /metrics, and the outbox depth from the store', async () => {
    const { app, services, post } = await setup({ database }, way);
    await addTestToken(services);
    await post(hit());
    await post(hit(), { 'User-Agent': 'Googlebot/2.1' });
    const text = await metricsText(app);
    expect(text).toMatch(/^analytics_hits_received_total 2$/m);
    expect(text).toMatch(/^analytics_hits_ignored_total\{reason="bot"\} 1$/m);
    expect(text).toMatch(/^analytics_outbox_depth 1$/m);
  });
});

describe.each(WAYS)('POST /collect through %s', (way) => {
  it.each([
    ['a crawler', 'Googlebot/2.1 (+http://www.google.com/bot.html)'],
    ['headless Chrome', HEADLESS],
    ['a script', 'curl/8.5.0'],
    ['no User-Agent at all', ''],
  ])('answers 204 but queues nothing for %s (X-Analytics-Ignored: bot)', async (_, userAgent) => {
    const { services, post, queued } = await setup({}, way);
    await addTestToken(services);
    const res = await post(hit(), { 'User-Agent': userAgent });
    expect(res.status).toBe(204);
    expect(res.headers.get('x-analytics-ignored')).toBe('bot');
    expect(await queued()).toEqual([]);
  });

  it('keeps a path a token ignores from that token only, and says so when no token takes it', async () => {
    const { services, post, queued } = await setup({}, way);
    const everything = await addTestToken(services);
    const noAdmin = await addTestToken(services, { ignorePaths: ['^/admin/', 'secret$'] });

    expect((await post(hit({ path: '/admin/users' }))).status).toBe(204);
    expect((await queued()).map((row) => row.tokenId)).toEqual([everything.id]);

    await services.sql('DELETE FROM outbox');
    const { services: lonely, post: postLonely, queued: queuedLonely } = await setup({}, way);
    await addTestToken(lonely, { ignorePaths: ['^/admin/'] });
    const res = await postLonely(hit({ path: '/admin/' }));
    expect(res.headers.get('x-analytics-ignored')).toBe('ignored-path');
    expect(await queuedLonely()).toEqual([]);
    expect(noAdmin.id).toBeGreaterThan(everything.id);
  });

  it('queues nothing while only the placeholder team token exists (X-Analytics-Ignored: no-token)', async () => {
    const { post, queued } = await setup({}, way);
    const res = await post(hit());
    expect(res.status).toBe(204);
    expect(res.headers.get('x-analytics-ignored')).toBe('no-token');
    expect(await queued()).toEqual([]);
  });

  it('queues and sends nothing when analytics is disabled', async () => {
    const { services, post, queued } = await setup({ config: { disabled: true } }, way);
    await addTestToken(services);
    const res = await post(hit());
    expect(res.status).toBe(204);
    expect(res.headers.get('x-analytics-ignored')).toBe('disabled');
    expect(await queued()).toEqual([]);
    const { relay } = services;
    relay.start();
    await relay.drain();
    await relay.stop();
    expect(ga.requests).toEqual([]);
  });

  it('accepts a beacon from any origin, and answers a JSON preflight', async () => {
    const { send, services, post } = await setup({}, way);
    await addTestToken(services);
    const res = await post(hit(), { Origin: 'https://site.example' });
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('strict-transport-security')).toContain('max-age=');
    const preflight = await send('/collect', {
      method: 'OPTIONS',
      headers: { Origin: 'https://site.example', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('*');
    expect(preflight.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('content-type');
  });

  it('also takes an application/json body', async () => {
    const { services, post, queued } = await setup({}, way);
    await addTestToken(services);
    expect((await post(hit(), { 'Content-Type': 'application/json' })).status).toBe(204);
    expect(await queued()).toHaveLength(1);
  });
});

describe.each(WAYS)('POST /collect with bad input, through %s', (way) => {
  const huge = 'x'.repeat(10 * 1024 * 1024);
  it.each([
    ['not JSON', 'path=/x', 400],
    ['JSON but not an object', '[1,2]', 400],
    ['a number for the path', JSON.stringify({ path: 5, title: 't', language: 'en' }), 400],
    ['no path', JSON.stringify({ title: 't', language: 'en' }), 400],
    ['a relative path', hit({ path: 'dashboard' }), 400],
    ['a protocol-relative path', hit({ path: '//evil.example/x' }), 400],
    ['a control character in the path', hit({ path: '/a\u0000b' }), 400],
    ['a title over 300 characters', hit({ title: 't'.repeat(301) }), 400],
    ['a language that is not a tag', hit({ language: 'en GB; drop table' }), 400],
    ['a language over 35 characters', hit({ language: `en-${'a'.repeat(40)}` }), 400],
    ['an object for the title', hit({ title: { toString: 'x' } }), 400],
    ['a body over 4 KiB', hit({ title: '', junk: 'j'.repeat(5000) }), 413],
    ['10 MB', huge, 413],
  ])('refuses %s with its 4xx and queues nothing', async (_, body, status) => {
    const { services, post, queued, app } = await setup({}, way);
    await addTestToken(services);
    const res = await post(body);
    expect(res.status).toBe(status);
    expect((await res.json()) as unknown).toEqual({ error: expect.any(String) });
    expect(await queued()).toEqual([]);
    const metrics = await metricsText(app);
    expect(metrics).toMatch(/^analytics_hits_received_total 0$/m);
  });

  it('cleans what it keeps: no query string, no fragment, no e-mail address, no control characters', async () => {
    const { services, post, queued } = await setup({}, way);
    await addTestToken(services);
    const res = await post(
      hit({ path: '/users/jane.doe@example.com/profile?token=abc&email=jane%40example.com#top', title: 'Profile of jane.doe@example.com\u0007\n' }),
    );
    expect(res.status).toBe(204);
    const [row] = await queued();
    expect(row?.params).toMatchObject({
      page_location: 'https://auth.example.org/users/[email]/profile',
      page_title: 'Profile of [email]',
    });
    expect(JSON.stringify(row)).not.toMatch(/jane|token=abc/);
  });

  it('rate-limits each client address, taking X-Forwarded-For only when told to trust the proxy', async () => {
    const limited = await setup({ config: { rateLimitPerMinute: 2 } }, way);
    await addTestToken(limited.services);
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await limited.post(hit(), { 'X-Forwarded-For': `10.0.0.${i}` })).status);
    expect(statuses).toEqual([204, 204, 429]); // the header is not trusted: one client
    const refused = await limited.post(hit());
    expect(refused.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(await limited.queued()).toHaveLength(2);

    const proxied = await setup({ config: { rateLimitPerMinute: 2, trustProxy: true } }, way);
    await addTestToken(proxied.services);
    // The proxy appends the address it saw: what the client put before it changes nothing.
    for (let i = 0; i < 3; i++) expect((await proxied.post(hit(), { 'X-Forwarded-For': `203.0.113.${i}, 10.0.0.${i}` })).status).toBe(204);
    expect((await proxied.post(hit(), { 'X-Forwarded-For': '198.51.100.7, 10.0.0.1' })).status).toBe(204);
    expect((await proxied.post(hit(), { 'X-Forwarded-For': '198.51.100.8, 10.0.0.1' })).status).toBe(429);
  });

  it('judges a declared Content-Length before reading, and counts refused hits by reason in /metrics', async () => {
    const { services, post, queued, app } = await setup({ config: { rateLimitPerMinute: 4 } }, way);
    await addTestToken(services);
    const big = hit({ title: '', junk: 'j'.repeat(5000) });
    expect((await post(big, { 'Content-Length': String(Buffer.byteLength(big)) })).status).toBe(413);
    expect((await post(hit(), { 'Content-Length': String(Buffer.byteLength(hit())) })).status).toBe(204);
    expect((await post('not json')).status).toBe(400);
    expect((await post(hit())).status).toBe(204);
    const limited = await post(hit());
    expect(limited.status).toBe(429);
    expect(limited.headers.get('access-control-allow-origin')).toBe('*');
    expect(await queued()).toHaveLength(2);
    const metrics = await metricsText(app);
    expect(metrics).toMatch(/^analytics_hits_refused_total\{reason="too-large"\} 1$/m);
    expect(metrics).toMatch(/^analytics_hits_refused_total\{reason="invalid"\} 1$/m);
    expect(metrics).toMatch(/^analytics_hits_refused_total\{reason="rate-limited"\} 1$/m);
  });
});

describe("npm start's listener", () => {
  /** What an answer says, but for what the connection adds (the date, keep-alive, framing). */
  async function said(res: Response) {
    const headers = Object.fromEntries([...res.headers].filter(([name]) => !['date', 'connection', 'keep-alive', 'content-length', 'transfer-encoding'].includes(name)));
    return { status: res.status, headers, body: await res.text() };
  }

  it.each<[string, (made: Awaited<ReturnType<typeof setup>>) => Promise<Response>]>([
    ['a page view', async ({ services, post }) => (await addTestToken(services), post(hit()))],
    ['a crawler', async ({ services, post }) => (await addTestToken(services), post(hit(), { 'User-Agent': 'Googlebot/2.1' }))],
    // Node keeps the first User-Agent of a request alone; web Headers join them all.
    ['a crawler behind a browser', async ({ services, post }) => (await addTestToken(services), post(hit(), { 'User-Agent': [CHROME, 'Googlebot/2.1'] }))],
    ['a path no token takes', async ({ services, post }) => (await addTestToken(services, { ignorePaths: ['^/x'] }), post(hit({ path: '/x' })))],
    ['no token yet', async ({ post }) => post(hit())],
    ['a body that is not JSON', async ({ post }) => post('path=/x')],
    ['a path that is not one', async ({ post }) => post(hit({ path: 'dashboard' }))],
    ['a declared length over 4 KiB', async ({ post }) => post(hit({ junk: 'j'.repeat(5000) }))],
    ['the third hit in a minute of two', async ({ post }) => (await post(hit()), await post(hit()), post(hit()))],
    ['a database that is gone', async ({ services, post }) => (await addTestToken(services), await services.store.close(), post(hit()))],
    [
      'a fault nobody expected',
      async ({ services, post }) => {
        services.tokens.recipients = () => {
          throw new Error('a fault every hit meets');
        };
        return post(hit());
      },
    ],
  ])("answers %s exactly as the app's route does", async (_, send) => {
    const config = { rateLimitPerMinute: 2 };
    const app = await said(await send(await setup({ config }, 'the app')));
    const listener = await said(await send(await setup({ config }, 'the listener')));
    expect(listener).toEqual(app);
    // Each case is one the hit's sequence tells apart: a 204 said how it was taken, a refusal why.
    expect(app.status === 204 || app.body.startsWith('{"error":')).toBe(true);
  });

  it('reads a body of unknown length (chunked) with the cap, and cuts no body short that arrives whole', async () => {
    const { services, queued, listener } = await setup({}, 'the listener');
    await addTestToken(services);
    const { url } = await serveListener(listener());
    const chunked = (parts: string[]) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = request(`${url}/collect`, { method: 'POST', headers: { 'Transfer-Encoding': 'chunked', 'User-Agent': CHROME } }, (res) => {
          let body = '';
          res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on('error', reject);
        for (const part of parts) req.write(part);
        req.end();
      });
    const whole = hit();
    expect(await chunked([whole.slice(0, 10), whole.slice(10)])).toEqual({ status: 204, body: '' });
    const over = await chunked(Array.from({ length: 20 }, () => 'x'.repeat(1000)));
    expect(over.status).toBe(413);
    expect(JSON.parse(over.body)).toEqual({ error: 'body over 4096 bytes' });
    expect(await queued()).toHaveLength(1);
  });

  /** A raw connection to a collector's listener, for requests no client library sends. */
  async function rawConnection(): Promise<Socket> {
    const { listener } = await setup({}, 'the listener');
    const { url } = await serveListener(listener());
    const socket = connect(Number(new URL(url).port), '127.0.0.1');
    socket.on('error', () => undefined);
    await new Promise<void>((resolve) => socket.on('connect', () => resolve()));
    return socket;
  }

  /** Writes `chunk` again and again for `ms` or until the connection closes: how many times it was written. */
  async function keepSending(socket: Socket, chunk: string | Buffer, ms: number): Promise<number> {
    const started = Date.now();
    let sent = 0;
    while (!socket.destroyed && Date.now() - started < ms) {
      sent += 1;
      if (!socket.write(chunk)) {
        await Promise.race([new Promise((resolve) => socket.once('drain', resolve)), new Promise((resolve) => setTimeout(resolve, 100))]);
      }
    }
    return sent;
  }

  it.each([
    ['a declared length over 4 KiB', 'Content-Length: 1000000000000'],
    ['a chunked body past 4 KiB', 'Transfer-Encoding: chunked'],
  ])('answers %s with its 413, then closes the connection of a client that keeps sending', async (_, framing) => {
    const socket = await rawConnection();
    let answer = '';
    socket.setEncoding('utf8').on('data', (text: string) => (answer += text));
    socket.write(`POST /collect HTTP/1.1\r\nHost: x\r\nUser-Agent: ${CHROME}\r\n${framing}\r\n\r\n`);
    const megabyte = 'x'.repeat(2 ** 20);
    // Without an end: 10 s of sending would be about 30 s (the request timeout) in the server's time.
    const sent = await keepSending(socket, framing.startsWith('Transfer') ? `${(2 ** 20).toString(16)}\r\n${megabyte}\r\n` : megabyte, 10_000);
    await new Promise((resolve) => (socket.closed ? resolve(undefined) : socket.on('close', resolve)));
    expect(answer).toMatch(/^HTTP\/1\.1 413 /);
    expect(answer).toContain('{"error":"body over 4096 bytes"}');
    // Cut off after at most half a second and 64 MiB of what it sent past the answer (in megabytes).
    expect(sent).toBeLessThan(200);
  }, 15_000);

  it('reads no more than that from a client that pipelines requests and never reads the answers', async () => {
    const socket = await rawConnection();
    // Answers it never reads pile up in front of its hit's 413: more than the sockets' buffers hold.
    socket.write('GET /api/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(400));
    socket.write(`POST /collect HTTP/1.1\r\nHost: x\r\nUser-Agent: ${CHROME}\r\nContent-Length: 1000000000000\r\n\r\n`);
    const sent = await keepSending(socket, Buffer.alloc(2 ** 20, 'x'), 3_000);
    socket.destroy();
    // 64 MiB read and dropped, plus what the two sockets' buffers hold (in megabytes).
    expect(sent).toBeLessThan(300);
  }, 15_000);

  it('answers a request without Host (HTTP/1.0, as some health checks send it) as the app does', async () => {
    const socket = await rawConnection();
    let answer = '';
    socket.setEncoding('utf8').on('data', (text: string) => (answer += text));
    socket.write('GET /healthz HTTP/1.0\r\n\r\n');
    await new Promise((resolve) => socket.on('close', resolve));
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    expect(answer).toContain('{"status":"ok"}');
  });

  it('hands every other request to the app: the snippet, a preflight, other methods and paths', async () => {
    const { services, listener } = await setup({}, 'the listener');
    await addTestToken(services);
    const { request: send } = await serveListener(listener());
    expect((await send('/analytics.js')).headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect((await send('/healthz')).status).toBe(200);
    expect((await send('/collect')).status).toBe(404);
    expect((await send('/collect/', { method: 'POST', body: hit() })).status).toBe(404);
    expect((await send('/collectx', { method: 'POST', body: hit() })).status).toBe(404);
    // A query string is the route's all the same, as hono matches it.
    expect((await send('/collect?from=beacon', { method: 'POST', body: hit(), headers: { 'User-Agent': CHROME } })).status).toBe(204);
    expect((await send('/api/openapi.json')).status).toBe(200);
  });
});

describe('GET /analytics.js', () => {
  it('serves the built snippet as JavaScript with a long cache and an ETag', async () => {
    const { app } = await setup();
    const res = await app.request('/analytics.js');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(res.headers.get('cache-control')).toContain('max-age=86400');
    expect(res.headers.get('cross-origin-resource-policy')).toBe('cross-origin');
    const etag = res.headers.get('etag');
    expect(etag).toMatch(/^".+"$/);
    expect((await res.text()).length).toBeGreaterThan(0);
    const again = await app.request('/analytics.js', { headers: { 'If-None-Match': etag ?? '' } });
    expect(again.status).toBe(304);
  });
});
