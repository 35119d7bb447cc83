import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Hono } from 'hono';
import { afterAll, describe, expect, it } from 'vitest';
import { ADMIN_COOKIES, CSRF_FIELD } from '../../server/admin/session.ts';
import { Relay } from '../../server/delivery/relay.ts';
import { addTestToken, DIALECTS, METRICS_TOKEN, type TestDatabase, type TestServices } from '../helpers/app.ts';
import { ADMIN_TOKEN, api, cookiesOf, csrfOf, login, makeAdminApp, postForm, recordingLogger } from '../helpers/admin.ts';
import { fakeGaPerTest } from '../helpers/fake-ga-per-test.ts';
import type { FakeGa } from '../../harness/fake-ga.ts';

const EVENTS_KEY = 'events-key-for-tests-0123456';
const dir = mkdtempSync(join(tmpdir(), 'analytics-credentials-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let ga: FakeGa;
const stopAfterTest = fakeGaPerTest((started) => (ga = started));

/** Each request from an address of its own, so that the failed-attempt budget never answers in place of the check under test. */
let lastAddress = 0;
const freshAddress = () => {
  lastAddress += 1;
  return `10.${(lastAddress >> 16) & 255}.${(lastAddress >> 8) & 255}.${lastAddress & 255}`;
};

function appWithEverything(options: Parameters<typeof makeAdminApp>[0] = {}) {
  return makeAdminApp({ ...options, config: { eventsKey: EVENTS_KEY, trustProxy: true, ...options.config } });
}

/** Everything a change could touch, to show that nothing did. */
async function snapshot(services: TestServices): Promise<string> {
  const rows = (table: string) => services.sql(`SELECT * FROM ${table} ORDER BY 1`);
  return JSON.stringify({ tokens: await rows('tokens'), outbox: await rows('outbox'), hostStats: await rows('host_stats'), sessions: await rows('admin_sessions') });
}

/** A value found on an answer, and where: a cookie (by name) or a form field. */
interface Found {
  where: string;
  value: string;
}

/** Every cookie value and every form field value in an answer. */
async function valuesIn(res: Response, where: string): Promise<Found[]> {
  const found: Found[] = [];
  for (const header of res.headers.getSetCookie()) {
    const pair = header.split(';')[0] ?? '';
    const name = pair.slice(0, pair.indexOf('='));
    const value = pair.slice(name.length + 1);
    if (value !== '') found.push({ where: `${where}: cookie ${name}`, value: decodeURIComponent(value) });
  }
  const text = await res.text();
  for (const match of text.matchAll(/<input[^>]*\svalue="([^"]+)"/g)) {
    found.push({ where: `${where}: form field`, value: (match[1] ?? '').replaceAll('&amp;', '&') });
  }
  // A JSON answer (the OpenAPI document's examples, say): every string that could pass for a credential.
  if (res.headers.get('content-type')?.startsWith('application/json')) {
    const strings = (value: unknown): string[] =>
      typeof value === 'string' ? [value] : value !== null && typeof value === 'object' ? Object.values(value).flatMap(strings) : [];
    for (const value of new Set(strings(JSON.parse(text) as unknown))) {
      if (value.length >= 16 && !/\s/.test(value)) found.push({ where: `${where}: JSON string`, value });
    }
  }
  return found;
}

/** What an anonymous visitor can collect by visiting every route it can reach without a credential. */
async function anonymousValues(app: Hono): Promise<Found[]> {
  const found: Found[] = [];
  const gets = [
    '/',
    '/admin',
    '/admin/',
    '/admin/login',
    '/admin/login?next=%2Fadmin%2Fanalytics%2F',
    '/admin/analytics/analyticstokens/',
    '/admin/analytics/analyticstokens/1/sent/',
    '/admin/analytics/about/',
    '/analytics.js',
    '/healthz',
    '/metrics',
    '/api/openapi.json',
  ];
  for (const path of gets) found.push(...(await valuesIn(await app.request(path), `GET ${path}`)));
  const hit = await app.request('/collect', { method: 'POST', body: JSON.stringify({ path: '/', title: 't', language: 'en' }), headers: { 'user-agent': 'Mozilla/5.0 Firefox/120.0' } });
  found.push(...(await valuesIn(hit, 'POST /collect')));
  // A failed login answers with a fresh form (and cookie) too.
  const form = await app.request('/admin/login');
  const failed = await postForm(app, '/admin/login', { _csrf: csrfOf(await form.text()), token: 'not-the-admin-token-at-all' }, cookiesOf(form).analytics_admin_login);
  found.push(...(await valuesIn(failed, 'POST /admin/login (wrong token)')));
  return found.filter((f) => !['/', '', 'on'].includes(f.value));
}

/** Every cookie name anything set, and every cookie the admin declares. */
function cookieNames(found: Found[]): string[] {
  const names = new Set<string>(ADMIN_COOKIES);
  for (const f of found) {
    const match = /cookie (\S+)$/.exec(f.where);
    if (match?.[1]) names.add(match[1]);
  }
  return [...names];
}

/** Where a configured secret is meant to work: the one place {@link expectRefusedEverywhere} does not try it. */
type OwnPlace = 'admin' | 'events' | 'metrics';

/** Every admin page a session opens. */
const ADMIN_PAGES = ['/admin/analytics/analyticstokens/', '/admin/analytics/analyticstokens/1/sent/', '/admin/analytics/about/', '/admin/analytics/failed/'];

/** Every form of the admin pages that changes something, with fields that would, were the form taken. */
const ADMIN_FORMS: Array<[path: string, fields: Record<string, string>]> = [
  ['/admin/analytics/analyticstokens/1/change/', { name: 'Taken over', measurementId: 'G-ATTACKER1', apiSecret: 'x' }],
  ['/admin/analytics/analyticstokens/add/', { name: 'Attacker', measurementId: 'G-ATTACKER2', apiSecret: 'attackersecret', sendPageViews: 'on' }],
  ['/admin/analytics/analyticstokens/1/delete/', {}],
  ['/admin/analytics/analyticstokens/1/validate/', {}],
  ['/admin/analytics/analyticstokens/1/retry/', {}],
  ['/admin/analytics/stats/run/', {}],
  ['/admin/logout', {}],
];

/** Every admin API route, each as a change would call it. */
const ADMIN_API: Array<[path: string, method: string, body?: string]> = [
  ['/api/admin/tokens', 'GET'],
  ['/api/admin/tokens', 'POST', '{"name":"Attacker","measurementId":"G-ATTACKER3","apiSecret":"attackersecret"}'],
  ['/api/admin/tokens/1', 'GET'],
  ['/api/admin/tokens/1', 'PATCH', '{"sendPageViews":false}'],
  ['/api/admin/tokens/1', 'DELETE'],
  ['/api/admin/tokens/1/validate', 'POST'],
  ['/api/admin/tokens/1/sent', 'GET'],
  ['/api/admin/tokens/1/retry', 'POST', '{}'],
  ['/api/admin/failed', 'GET'],
  ['/api/admin/stats/run', 'POST'],
  ['/api/admin/status', 'GET'],
];

/**
 * Presents `value` in every credential place (every admin cookie on every page and form, as the forms' CSRF token,
 * as the login form's admin token, as every bearer); each must refuse it and change nothing. A configured secret
 * is not tried in its `own` place.
 */
async function expectRefusedEverywhere(app: Hono, services: TestServices, found: Found, names: string[], genuineCsrf?: string, own?: OwnPlace): Promise<void> {
  const label = `${found.where} = ${found.value.slice(0, 40)}`;
  const before = await snapshot(services);
  const ip = () => ({ 'x-forwarded-for': freshAddress() });
  for (const name of names) {
    const cookie = `${name}=${encodeURIComponent(found.value)}`;
    for (const page of ADMIN_PAGES) {
      const res = await app.request(page, { headers: { cookie, ...ip() } });
      expect(res.status, `${label} as cookie ${name} at ${page}`).toBe(303);
    }
    for (const csrf of [found.value, genuineCsrf].filter((v): v is string => v !== undefined)) {
      for (const [path, fields] of ADMIN_FORMS) {
        const res = await app.request(path, {
          method: 'POST',
          headers: { cookie, 'content-type': 'application/x-www-form-urlencoded', ...ip() },
          body: new URLSearchParams({ [CSRF_FIELD]: csrf, ...fields }).toString(),
        });
        expect(res.status, `${label} as cookie ${name} posting to ${path}`).toBe(403);
      }
    }
  }
  const bearer = async (path: string, method: string, body?: string): Promise<Response> =>
    app.request(path, { method, body, headers: { authorization: `Bearer ${found.value}`, 'content-type': 'application/json', ...ip() } });
  // At once: each wrong bearer is answered after the budget's delay.
  const places: Array<[string, Promise<Response>]> = [];
  if (own !== 'admin') for (const [path, method, body] of ADMIN_API) places.push([`admin bearer, ${method} ${path}`, bearer(path, method, body)]);
  if (own !== 'events') {
    places.push(['events key, POST /api/events', bearer('/api/events', 'POST', '{"namespace":"a","task":"b"}')]);
    places.push(['events key, PUT /api/stats', bearer('/api/stats', 'PUT', '{"users":1,"tokens":1,"apps":[]}')]);
  }
  if (own !== 'metrics') places.push(['metrics token', bearer('/metrics', 'GET')]);
  // As the admin token typed into a genuine login form: no session.
  const asLoginToken = async (): Promise<Response> => {
    const address = ip();
    const form = await app.request('/admin/login', { headers: address });
    return app.request('/admin/login', {
      method: 'POST',
      headers: { cookie: cookiesOf(form).analytics_admin_login ?? '', 'content-type': 'application/x-www-form-urlencoded', ...address },
      body: new URLSearchParams({ [CSRF_FIELD]: csrfOf(await form.text()), token: found.value }).toString(),
    });
  };
  if (own !== 'admin') places.push(["the login form's admin token", asLoginToken()]);
  for (const [where, answer] of places) expect((await answer).status, `${label} as ${where}`).toBe(401);
  const login = places.find(([where]) => where.startsWith('the login form'));
  if (login) expect(cookiesOf(await login[1]).analytics_admin_session, `${label} as the login form's admin token`).toBeUndefined();
  expect(await snapshot(services), label).toBe(before);
}

describe('no credential works anywhere but in its own place', () => {
  it('refuses every value an anonymous visitor can collect, under every cookie name, as CSRF and as every bearer', async () => {
    const { app, services } = await appWithEverything();
    const found = await anonymousValues(app);
    // The login form's cookie and CSRF token at least; whatever else appears later is covered the same way.
    expect(found.some((f) => f.where.includes('cookie analytics_admin_login'))).toBe(true);
    expect(found.some((f) => f.where.includes('form field'))).toBe(true);
    expect(found.some((f) => f.where.includes('GET /api/openapi.json: JSON string'))).toBe(true);
    const browser = await login(app);
    const names = cookieNames(found);
    for (const value of found) await expectRefusedEverywhere(app, services, value, names, browser.csrf);
  });

  it('refuses what a logged-in admin holds, and the other secrets, outside their own place', async () => {
    const { app, services } = await appWithEverything();
    const browser = await login(app);
    const sessionValue = decodeURIComponent(browser.cookie.slice(browser.cookie.indexOf('=') + 1));
    const names = cookieNames([]);
    // The session cookie under every other name and as every bearer; its CSRF token likewise.
    for (const value of [sessionValue, browser.csrf]) {
      await expectRefusedEverywhere(app, services, { where: 'admin', value }, names.filter((n) => n !== 'analytics_admin_session' || value !== sessionValue));
    }
    // The session's CSRF token does not open the login form, nor does the session cookie stand in for its cookie.
    const form = await app.request('/admin/login', { headers: { 'x-forwarded-for': freshAddress() } });
    const asLoginForm = await postForm(app, '/admin/login', { _csrf: browser.csrf, token: ADMIN_TOKEN }, cookiesOf(form).analytics_admin_login);
    expect(asLoginForm.status).toBe(403);
    const loginCsrf = csrfOf(await (await app.request('/admin/login')).text());
    const sessionAsLoginCookie = await postForm(app, '/admin/login', { _csrf: loginCsrf, token: ADMIN_TOKEN }, `analytics_admin_login=${encodeURIComponent(sessionValue)}`);
    expect(sessionAsLoginCookie.status).toBe(403);
    // Each configured secret in every other place: as either cookie, as CSRF, as the login form's token, as every other bearer.
    for (const [value, own] of [[ADMIN_TOKEN, 'admin'], [EVENTS_KEY, 'events'], [METRICS_TOKEN, 'metrics']] as const) {
      await expectRefusedEverywhere(app, services, { where: `the ${own} secret`, value }, names, browser.csrf, own);
    }
    // Each configured secret opens its own door only.
    const before = await snapshot(services);
    const as = (secret: string, path: string, method = 'GET', body?: string) =>
      app.request(path, { method, body, headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json', 'x-forwarded-for': freshAddress() } });
    expect((await as(EVENTS_KEY, '/api/admin/tokens')).status).toBe(401);
    expect((await as(METRICS_TOKEN, '/api/admin/tokens')).status).toBe(401);
    expect((await as(EVENTS_KEY, '/api/admin/tokens/1/sent')).status).toBe(401);
    expect((await as(METRICS_TOKEN, '/api/admin/tokens/1/sent')).status).toBe(401);
    // A bearer credential opens no page: the pages take the session cookie only.
    for (const secret of [ADMIN_TOKEN, EVENTS_KEY, METRICS_TOKEN]) {
      for (const page of ['/admin/analytics/analyticstokens/1/sent/', '/admin/analytics/about/']) {
        expect((await as(secret, page)).status, `${page} with a bearer`).toBe(303);
      }
    }
    expect((await as(ADMIN_TOKEN, '/api/events', 'POST', '{"namespace":"a","task":"b"}')).status).toBe(401);
    expect((await as(METRICS_TOKEN, '/api/events', 'POST', '{"namespace":"a","task":"b"}')).status).toBe(401);
    expect((await as(ADMIN_TOKEN, '/metrics')).status).toBe(401);
    expect((await as(EVENTS_KEY, '/metrics')).status).toBe(401);
    expect(await snapshot(services)).toBe(before);
    // And each works in its own place.
    expect((await as(ADMIN_TOKEN, '/api/admin/tokens')).status).toBe(200);
    expect((await as(ADMIN_TOKEN, '/api/admin/tokens/1/sent')).status).toBe(200);
    for (const page of ['/admin/analytics/analyticstokens/1/sent/', '/admin/analytics/about/']) {
      expect((await app.request(page, { headers: { cookie: browser.cookie } })).status, page).toBe(200);
    }
    expect((await as(METRICS_TOKEN, '/metrics')).status).toBe(200);
  });
});

describe('what a visitor is handed says nothing about the admin token', () => {
  it('cannot be used to test a guess of the admin token offline, not even the right one', async () => {
    const { app } = await appWithEverything();
    const form = await app.request('/admin/login');
    const pair = cookiesOf(form).analytics_admin_login ?? '';
    const raw = decodeURIComponent(pair.slice(pair.indexOf('=') + 1));
    const cut = raw.lastIndexOf('.');
    const [value, signature] = [raw.slice(0, cut), raw.slice(cut + 1)];
    const csrf = csrfOf(await form.text());
    // Everything a signature could be made of, if the keys came from the admin token alone.
    const keysFrom = (token: string) =>
      ['admin-login-form', 'admin-login-csrf', 'login-form', 'csrf', 'session-cookie'].flatMap((purpose) => [
        createHmac('sha256', token).update(`analytics-admin:${purpose}`).digest(),
        createHmac('sha256', token).update(purpose).digest(),
        Buffer.from(token),
      ]);
    for (const key of keysFrom(ADMIN_TOKEN)) {
      for (const encoding of ['base64', 'base64url'] as const) {
        expect(createHmac('sha256', key).update(value).digest(encoding)).not.toBe(signature);
        expect(createHmac('sha256', key).update(value).digest(encoding)).not.toBe(csrf);
      }
    }
  });
});

describe.each(DIALECTS)('sessions (%s)', (dialect) => {
  it('a logged-out session stays refused after a restart, and a new admin token ends every session', async () => {
    const first = await appWithEverything({ database: dialect === 'sqlite' ? { sqliteFile: join(dir, 'sessions.db') } : 'postgres' });
    // A restart opens the same database again.
    const same: TestDatabase = dialect === 'sqlite' ? { sqliteFile: first.services.location } : { postgresUrl: first.services.location };
    const loggedOut = await login(first.app);
    const kept = await login(first.app);
    expect((await postForm(first.app, '/admin/logout', { _csrf: loggedOut.csrf }, loggedOut.cookie)).status).toBe(303);
    await first.services.store.close();

    const restarted = await appWithEverything({ database: same });
    expect((await restarted.app.request('/admin/analytics/analyticstokens/', { headers: { cookie: loggedOut.cookie } })).status).toBe(303);
    expect((await restarted.app.request('/admin/analytics/analyticstokens/', { headers: { cookie: kept.cookie } })).status).toBe(200);
    await restarted.services.store.close();

    const newToken = await appWithEverything({ database: same, config: { adminToken: 'a-brand-new-admin-token-0042' } });
    expect((await newToken.app.request('/admin/analytics/analyticstokens/', { headers: { cookie: kept.cookie } })).status).toBe(303);
    await newToken.services.store.close();
  });
});

describe('the failed-attempt budget', () => {
  it('answers 429 to an address after 10 failures a minute, whatever it sends, while others still get in', async () => {
    const log = recordingLogger();
    const { app, services } = await appWithEverything({ log });
    const attacker = { 'x-forwarded-for': '2001:db8:7:7::1' };
    // Ten wrong credentials, spread over every surface, all from one /64.
    const wrong = (n: number) => `wrong-credential-number-${n}`;
    const tries = [
      () => api(app, 'GET', '/tokens', undefined, wrong(1), attacker),
      () => app.request('/api/events', { method: 'POST', headers: { authorization: `Bearer ${wrong(2)}`, ...attacker }, body: '{}' }),
      () => app.request('/metrics', { headers: { authorization: `Bearer ${wrong(3)}`, ...attacker } }),
    ];
    for (let i = 0; i < 10; i += 1) {
      const res = await tries[i % tries.length]!();
      expect(res.status, `failure ${i + 1}`).toBe(401);
    }
    // The 11th try from another address of the same /64 is refused, and so is the right credential from there.
    const sameNetwork = { 'x-forwarded-for': '2001:db8:7:7:ffff::99' };
    const eleventh = await api(app, 'GET', '/tokens', undefined, wrong(11), sameNetwork);
    expect(eleventh.status).toBe(429);
    expect(Number(eleventh.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(Number(eleventh.headers.get('retry-after'))).toBeLessThanOrEqual(60);
    expect((await api(app, 'GET', '/tokens', undefined, ADMIN_TOKEN, attacker)).status).toBe(429);
    const form = await app.request('/admin/login', { headers: attacker });
    expect(form.status).toBe(429);
    expect(Number(form.headers.get('retry-after'))).toBeGreaterThan(0);
    // Another address still gets in with the right credential, on every surface.
    const other = { 'x-forwarded-for': '198.51.100.7' };
    expect((await api(app, 'GET', '/tokens', undefined, ADMIN_TOKEN, other)).status).toBe(200);
    expect((await app.request('/metrics', { headers: { authorization: `Bearer ${METRICS_TOKEN}`, ...other } })).status).toBe(200);
    expect(services.metrics.credentialFailures.get !== undefined).toBe(true);
    // Ten failures in quick succession are one log line, and never the guess itself.
    const failureLines = log.lines.filter((line) => line.includes('wrong credential'));
    expect(failureLines).toHaveLength(1);
    for (const line of log.lines) expect(line).not.toContain('wrong-credential-number');
  });

  it('in a flood from many addresses, refuses those that failed, not those that did not', async () => {
    const { app } = await appWithEverything();
    // 100 wrong guesses (the total budget), one from each of 100 addresses, all at once.
    const addresses = Array.from({ length: 100 }, (_, i) => `198.18.0.${i}`);
    const answers = await Promise.all(addresses.map((address) => api(app, 'GET', '/tokens', undefined, 'a-wrong-guess-0000000', { 'x-forwarded-for': address })));
    expect(new Set(answers.map((res) => res.status))).toEqual(new Set([401]));
    // Now an address that failed once is refused, even with a single failure of its own...
    expect((await api(app, 'GET', '/tokens', undefined, 'a-wrong-guess-0000000', { 'x-forwarded-for': addresses[0]! })).status).toBe(429);
    // ...while one that never failed still gets its answer checked.
    expect((await api(app, 'GET', '/tokens', undefined, ADMIN_TOKEN, { 'x-forwarded-for': '192.0.2.200' })).status).toBe(200);
  });
});

describe('the failed-attempt budget under pressure', () => {
  it('counts login guesses that arrive together: at most 10 are checked before the address is refused', async () => {
    const { app } = await appWithEverything();
    const attacker = { 'x-forwarded-for': '203.0.113.50' };
    const form = await app.request('/admin/login', { headers: attacker });
    const cookie = cookiesOf(form).analytics_admin_login ?? '';
    const csrf = csrfOf(await form.text());
    // Every request passes the first look at the budget at once; their bodies arrive only afterwards.
    let release = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    const guesses = Array.from({ length: 60 }, (_, i) => (i === 50 ? ADMIN_TOKEN : `wrong-guess-number-${i}`));
    const answers = guesses.map((token) => {
      const body = new URLSearchParams({ _csrf: csrf, token }).toString();
      const stream = new ReadableStream<Uint8Array>({
        async start(controller) {
          await gate;
          controller.enqueue(new TextEncoder().encode(body));
          controller.close();
        },
      });
      return app.request('/admin/login', {
        method: 'POST',
        body: stream,
        headers: { cookie, 'content-type': 'application/x-www-form-urlencoded', ...attacker },
        duplex: 'half',
      } as RequestInit);
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    release();
    const statuses = (await Promise.all(answers)).map((res) => res.status);
    expect(statuses.filter((status) => status === 401).length).toBeLessThanOrEqual(10);
    expect(statuses[50]).toBe(429);
  });

  it('is not reset by flooding it with other addresses: a locked-out address stays locked out', async () => {
    const { app } = await appWithEverything();
    const attacker = { 'x-forwarded-for': '2001:db8:ffff:ffff::1' };
    for (let i = 0; i < 10; i += 1) await api(app, 'GET', '/tokens', undefined, `wrong-${i}-000000000000`, attacker);
    expect((await api(app, 'GET', '/tokens', undefined, 'wrong-x-000000000000', attacker)).status).toBe(429);
    // More addresses than the guard remembers, each with one wrong guess.
    const others = Array.from({ length: 10_050 }, (_, i) => `2001:db8:1:${i.toString(16)}::1`);
    for (let from = 0; from < others.length; from += 2_000) {
      await Promise.all(others.slice(from, from + 2_000).map((address) => api(app, 'GET', '/tokens', undefined, 'wrong-y-000000000000', { 'x-forwarded-for': address })));
    }
    expect((await api(app, 'GET', '/tokens', undefined, ADMIN_TOKEN, attacker)).status).toBe(429);
  });
});

describe('secrets are never echoed', () => {
  it('blanks a secret GA echoes (raw and URL-encoded) before storing it, also once the secret changed', async () => {
    const log = recordingLogger();
    const { app, services } = await appWithEverything({ log, config: { gaUrl: ga.url } });
    // A secret stored before the alphabet rule, with characters that URL-encode differently.
    const old = 'legacy/secret+with=chars';
    const token = await addTestToken(services, { apiSecret: old });
    ga.setMode({ kind: 'status', status: 400, body: `bad request: api_secret=${encodeURIComponent(old)} (${old})` });
    const relay = stopAfterTest(new Relay(services, { lingerMs: 10, random: () => 0 }));
    await app.request('/collect', { method: 'POST', body: JSON.stringify({ path: '/x', title: 'X', language: 'en' }), headers: { 'user-agent': 'Mozilla/5.0 Firefox/120.0' } });
    relay.start();
    await ga.waitFor(() => ga.requests.length >= 1);
    await relay.stop();
    const [failedRow] = await services.sql<{ last_error: string }>("SELECT last_error FROM outbox WHERE status = 'failed'");
    expect(failedRow?.last_error).toContain('bad request');

    const fresh = 'NewSecret_0123-abcd';
    expect((await api(app, 'PATCH', `/tokens/${token.id}`, { apiSecret: fresh })).status).toBe(200);
    const browser = await login(app);
    const seen = [
      await (await api(app, 'GET', '/status')).text(),
      await (await api(app, 'GET', '/failed')).text(),
      await (await api(app, 'GET', `/tokens/${token.id}`)).text(),
      await (await app.request('/admin/analytics/analyticstokens/', { headers: { cookie: browser.cookie } })).text(),
      await (await app.request('/admin/analytics/failed/', { headers: { cookie: browser.cookie } })).text(),
      JSON.stringify(await services.sql('SELECT * FROM outbox')),
      JSON.stringify(await services.sql('SELECT last_error FROM tokens')),
      log.lines.join('\n'),
    ].join('\n');
    expect(seen).toContain('bad request');
    for (const form of [old, encodeURIComponent(old), fresh]) expect(seen).not.toContain(form);
  });

  it('refuses an API secret outside GA’s alphabet with a 400 saying so', async () => {
    const { app } = await appWithEverything();
    const res = await api(app, 'POST', '/tokens', { name: 'P', measurementId: 'G-ABC123', apiSecret: 'has space' });
    expect(res.status).toBe(400);
    expect(await res.text()).toMatch(/apiSecret.*letters, digits, _ and -/);
    expect((await api(app, 'POST', '/tokens', { name: 'P', measurementId: 'G-ABC123', apiSecret: 'Ok_secret-09' })).status).toBe(201);
  });
});

describe('/metrics', () => {
  it('answers only with the metrics token, and not at all without one configured', async () => {
    const { app } = await appWithEverything();
    const from = () => ({ 'x-forwarded-for': freshAddress() });
    expect((await app.request('/metrics', { headers: from() })).status).toBe(401);
    expect((await app.request('/metrics', { headers: { authorization: 'Bearer wrong-metrics-token-000', ...from() } })).status).toBe(401);
    const ok = await app.request('/metrics', { headers: { authorization: `Bearer ${METRICS_TOKEN}`, ...from() } });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain('analytics_hits_received_total');
    const off = await appWithEverything({ config: { metricsToken: undefined } });
    expect((await off.app.request('/metrics', { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).status).toBe(404);
  });
});
