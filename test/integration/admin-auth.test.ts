import type { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import type { Services } from '../../server/services.ts';
import { fakeClock, metricsText, type TestServices } from '../helpers/app.ts';
import { ADMIN_TOKEN, api, cookiesOf, csrfOf, getPage, login, makeAdminApp, postForm } from '../helpers/admin.ts';

const PAGE_GETS = [
  '/admin/analytics/analyticstokens/',
  '/admin/analytics/analyticstokens/add/',
  '/admin/analytics/analyticstokens/1/change/',
  '/admin/analytics/analyticstokens/1/delete/',
  '/admin/analytics/analyticstokens/1/validate/',
  '/admin/analytics/failed/',
  '/admin/logout',
];

/** Every form POST of the pages, with a body that would change something if it were let through. */
const PAGE_POSTS: Array<[string, Record<string, string>]> = [
  ['/admin/analytics/analyticstokens/add/', { name: 'Injected', measurementId: 'G-INJECTED1', apiSecret: 'x', sendPageViews: 'on' }],
  ['/admin/analytics/analyticstokens/1/change/', { name: 'Changed', measurementId: 'G-CHANGED1', ignorePaths: '' }],
  ['/admin/analytics/analyticstokens/1/delete/', {}],
  ['/admin/analytics/analyticstokens/1/validate/', {}],
  ['/admin/analytics/analyticstokens/1/retry/', {}],
  ['/admin/logout', {}],
];

const API_CALLS: Array<[string, string, unknown]> = [
  ['GET', '/tokens', undefined],
  ['POST', '/tokens', { name: 'Injected', measurementId: 'G-INJECTED1' }],
  ['GET', '/tokens/1', undefined],
  ['PATCH', '/tokens/1', { sendPageViews: false }],
  ['DELETE', '/tokens/1', undefined],
  ['POST', '/tokens/1/validate', undefined],
  ['POST', '/tokens/1/retry', undefined],
  ['GET', '/failed', undefined],
  ['GET', '/status', undefined],
];

const snapshot = async (services: TestServices): Promise<string> => JSON.stringify(await services.sql('SELECT * FROM tokens ORDER BY id'));

async function failuresCounted(services: Services, surface: 'page' | 'api'): Promise<number> {
  const metric = await services.metrics.credentialFailures.get();
  return metric?.values.find((v) => v.labels.surface === surface)?.value ?? 0;
}

/** Every page POST with `cookie` and `fields` on top is refused with 403, and the tokens are unchanged. */
async function expectPostsRefused(app: Hono, services: TestServices, cookie: string | undefined, extra: Record<string, string>): Promise<void> {
  const before = await snapshot(services);
  for (const [path, fields] of PAGE_POSTS) {
    const res = await postForm(app, path, { ...fields, ...extra }, cookie);
    expect(res.status, path).toBe(403);
    expect(res.headers.get('content-type')).toMatch(/text\/html/);
    expect(await res.text()).toContain('nothing was changed');
  }
  expect(await snapshot(services)).toBe(before);
}

describe('admin off (no ANALYTICS_ADMIN_TOKEN)', () => {
  it('answers every admin route, pages and API, with the ordinary 404', async () => {
    const { app } = await makeAdminApp({ config: { adminToken: undefined } });
    const ordinary = await app.request('/no-such-route');
    const ordinaryBody = await ordinary.text();
    const paths = ['/admin', '/admin/', '/admin/login', ...PAGE_GETS, ...PAGE_POSTS.map(([p]) => p)];
    for (const path of paths) {
      for (const method of ['GET', 'POST']) {
        const res = await app.request(path, { method });
        expect(res.status, `${method} ${path}`).toBe(404);
        expect(await res.text()).toBe(ordinaryBody);
      }
    }
    for (const [method, path, body] of API_CALLS) {
      const res = await api(app, method, path, body);
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(await res.text()).toBe(ordinaryBody);
    }
  });
});

describe('admin API authentication', () => {
  it('refuses a missing, wrong or differently-schemed token on every route, changing nothing', async () => {
    // Each wrong guess from an address of its own, so the shared failed-attempt budget (tested below) stays out of it.
    const { app, services, log } = await makeAdminApp({ config: { trustProxy: true } });
    let address = 0;
    const from = () => ({ 'x-forwarded-for': `192.0.2.${++address}` });
    const before = await snapshot(services);
    for (const [method, path, body] of API_CALLS) {
      const missing = await api(app, method, path, body, null);
      expect(missing.status, `${method} ${path}`).toBe(401);
      expect(missing.headers.get('www-authenticate')).toMatch(/^Bearer/);
      const wrongs = [`${ADMIN_TOKEN}x`, ADMIN_TOKEN.slice(0, -1), 'admin-token-for-tests-0123456780'];
      const answers = await Promise.all(wrongs.map((wrong) => api(app, method, path, body, wrong, from())));
      for (const res of answers) {
        expect(res.status, `${method} ${path}`).toBe(401);
        const text = await res.text();
        expect(text).not.toContain(ADMIN_TOKEN);
        expect(JSON.parse(text)).toEqual({ error: 'wrong admin token' });
      }
      const basic = await app.request(`/api/admin${path}`, {
        method,
        headers: { authorization: `Basic ${Buffer.from(`admin:${ADMIN_TOKEN}`).toString('base64')}` },
      });
      expect(basic.status).toBe(401);
      // A session cookie is no key to the API: only the bearer token is.
      const browser = await login(app);
      const withCookie = await app.request(`/api/admin${path}`, { method, headers: { cookie: browser.cookie } });
      expect(withCookie.status).toBe(401);
    }
    expect(await snapshot(services)).toBe(before);
    expect(await failuresCounted(services, 'api')).toBe(API_CALLS.length * 3);
    for (const line of log.lines) expect(line).not.toContain(ADMIN_TOKEN);
  });

  it('slows a wrong token down but not a right one', async () => {
    const { app } = await makeAdminApp();
    let started = performance.now();
    expect((await api(app, 'GET', '/tokens', undefined, 'wrong-token-wrong-token')).status).toBe(401);
    const wrongMs = performance.now() - started;
    started = performance.now();
    expect((await api(app, 'GET', '/tokens')).status).toBe(200);
    const rightMs = performance.now() - started;
    expect(wrongMs).toBeGreaterThanOrEqual(290);
    expect(rightMs).toBeLessThan(200);
  });
});

describe('admin pages: login and session', () => {
  it('sends a browser without a session to the login page, and back after logging in', async () => {
    const { app } = await makeAdminApp();
    for (const path of PAGE_GETS) {
      const res = await getPage(app, path);
      expect(res.status, path).toBe(303);
      expect(res.headers.get('location')).toBe(`/admin/login?next=${encodeURIComponent(path)}`);
    }
    const form = await getPage(app, '/admin/login?next=%2Fadmin%2Fanalytics%2Fanalyticstokens%2F1%2Fchange%2F');
    const html = await form.text();
    expect(html).toContain('name="next" value="/admin/analytics/analyticstokens/1/change/"');
    const res = await postForm(
      app,
      '/admin/login',
      { _csrf: csrfOf(html), token: ADMIN_TOKEN, next: '/admin/analytics/analyticstokens/1/change/' },
      cookiesOf(form).analytics_admin_login,
    );
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/admin/analytics/analyticstokens/1/change/');
  });

  it('sets an HttpOnly, SameSite=Strict, expiring session cookie, Secure over https', async () => {
    const { app } = await makeAdminApp();
    const form = await app.request('https://admin.example/admin/login');
    expect(form.headers.getSetCookie()[0]).toMatch(/; Path=\/admin; HttpOnly; Secure; SameSite=Strict$/);
    const res = await app.request('https://admin.example/admin/login', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: cookiesOf(form).analytics_admin_login ?? '' },
      body: new URLSearchParams({ _csrf: csrfOf(await form.text()), token: ADMIN_TOKEN }).toString(),
    });
    expect(res.status).toBe(303);
    const session = res.headers.getSetCookie().find((c) => c.startsWith('analytics_admin_session='));
    expect(session).toMatch(/; Max-Age=28800; Path=\/admin; HttpOnly; Secure; SameSite=Strict$/);
    expect(session).not.toContain(ADMIN_TOKEN);

    const plain = await app.request('http://admin.example/admin/login');
    expect(plain.headers.getSetCookie()[0]).not.toContain('Secure');
    const proxied = await makeAdminApp({ config: { trustProxy: true } });
    const behindProxy = await proxied.app.request('http://admin.example/admin/login', { headers: { 'x-forwarded-proto': 'https' } });
    expect(behindProxy.headers.getSetCookie()[0]).toContain('; Secure');
    const untrusted = await app.request('http://admin.example/admin/login', { headers: { 'x-forwarded-proto': 'https' } });
    expect(untrusted.headers.getSetCookie()[0]).not.toContain('Secure');
  });

  it('refuses a wrong token slowly, counts it and never echoes what was typed', async () => {
    const { app, services, log } = await makeAdminApp();
    const form = await app.request('/admin/login');
    const cookie = cookiesOf(form).analytics_admin_login;
    const csrf = csrfOf(await form.text());
    const typed = 'my-guess-<b>bold</b>-1234567';
    const started = performance.now();
    const res = await postForm(app, '/admin/login', { _csrf: csrf, token: typed }, cookie);
    expect(performance.now() - started).toBeGreaterThanOrEqual(290);
    expect(res.status).toBe(401);
    expect(res.headers.getSetCookie().some((c) => c.startsWith('analytics_admin_session='))).toBe(false);
    const html = await res.text();
    expect(html).toContain('That is not the admin token.');
    expect(html).not.toContain('my-guess');
    expect(await failuresCounted(services, 'page')).toBe(1);
    const metrics = await metricsText(app);
    expect(metrics).toMatch(/analytics_credential_failures_total\{surface="page"\} 1/);
    // A near miss (the right token plus a character) is just as wrong.
    const near = await postForm(app, '/admin/login', { _csrf: csrf, token: `${ADMIN_TOKEN} ` }, cookie);
    expect(near.status).toBe(401);
    for (const line of log.lines) {
      expect(line).not.toContain('my-guess');
      expect(line).not.toContain(ADMIN_TOKEN);
    }
  });

  it('refuses a login post without the login form’s CSRF token', async () => {
    const { app } = await makeAdminApp();
    const form = await app.request('/admin/login');
    const cookie = cookiesOf(form).analytics_admin_login;
    const csrf = csrfOf(await form.text());
    const other = await app.request('/admin/login');
    const cases: Array<[Record<string, string>, string | undefined]> = [
      [{ token: ADMIN_TOKEN }, cookie],
      [{ token: ADMIN_TOKEN, _csrf: 'forged' }, cookie],
      [{ token: ADMIN_TOKEN, _csrf: csrf }, undefined],
      [{ token: ADMIN_TOKEN, _csrf: csrfOf(await other.text()) }, cookie],
    ];
    for (const [fields, withCookie] of cases) {
      const res = await postForm(app, '/admin/login', fields, withCookie);
      expect(res.status).toBe(403);
      expect(res.headers.getSetCookie().some((c) => c.startsWith('analytics_admin_session='))).toBe(false);
    }
  });

  it('never redirects outside the admin after login', async () => {
    const { app } = await makeAdminApp();
    for (const next of ['//evil.example/', 'https://evil.example/', '/\\evil.example', '/admin//evil.example', '/admin/login', '/elsewhere']) {
      const form = await app.request('/admin/login');
      const res = await postForm(
        app,
        '/admin/login',
        { _csrf: csrfOf(await form.text()), token: ADMIN_TOKEN, next },
        cookiesOf(form).analytics_admin_login,
      );
      expect(res.headers.get('location'), next).toBe('/admin/analytics/analyticstokens/');
    }
  });

  it('refuses a tampered, expired, logged-out or old-token session cookie everywhere', async () => {
    const clock = fakeClock(Date.now());
    const { app, services } = await makeAdminApp({ clock });
    const browser = await login(app);
    const [name, value] = browser.cookie.split('=') as [string, string];
    const decoded = decodeURIComponent(value);
    const [purpose, id, expiresAt, signature] = decoded.split('.') as [string, string, string, string];
    const tampered = [
      `${name}=${encodeURIComponent(`${purpose}.${id}.${Number(expiresAt) + 86_400_000}.${signature}`)}`,
      `${name}=${encodeURIComponent(`${purpose}.${id.slice(0, -1)}${id.endsWith('A') ? 'B' : 'A'}.${expiresAt}.${signature}`)}`,
      `${name}=${encodeURIComponent(`${purpose}.${id}.${expiresAt}.${signature.slice(0, 10)}${signature[10] === 'A' ? 'B' : 'A'}${signature.slice(11)}`)}`,
      `${name}=${encodeURIComponent(`${purpose}.${id}.${expiresAt}`)}`,
      `${name}=${encodeURIComponent(`${id}.${expiresAt}.${signature}`)}`,
      `${name}=garbage`,
    ];
    // A cookie made by an install with another admin token (or before the token was changed).
    const otherApp = await makeAdminApp({ config: { adminToken: 'a-different-admin-token-98765' }, clock });
    const otherBrowser = await login(otherApp.app, 'a-different-admin-token-98765');
    tampered.push(otherBrowser.cookie);

    for (const cookie of tampered) {
      for (const path of PAGE_GETS) {
        const res = await getPage(app, path, cookie);
        expect(res.status, `${path} with ${cookie}`).toBe(303);
        expect(res.headers.get('location')).toMatch(/^\/admin\/login/);
      }
      await expectPostsRefused(app, services, cookie, { _csrf: browser.csrf });
    }
    // The genuine cookie still works...
    expect((await getPage(app, PAGE_GETS[0] ?? '', browser.cookie)).status).toBe(200);
    // ...until it runs out.
    clock.advance(8 * 3_600_000 + 1);
    expect((await getPage(app, PAGE_GETS[0] ?? '', browser.cookie)).status).toBe(303);
    await expectPostsRefused(app, services, browser.cookie, { _csrf: browser.csrf });
  });

  it('logs out: the cookie is cleared and a kept copy no longer works', async () => {
    const { app, services } = await makeAdminApp();
    const browser = await login(app);
    const confirm = await getPage(app, '/admin/logout', browser.cookie);
    expect(confirm.status).toBe(200);
    expect(await confirm.text()).toContain('End this admin session?');
    const res = await postForm(app, '/admin/logout', { _csrf: browser.csrf }, browser.cookie);
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/admin/login');
    expect(res.headers.getSetCookie().find((c) => c.startsWith('analytics_admin_session='))).toMatch(/^analytics_admin_session=; Max-Age=0/);
    expect((await getPage(app, '/admin/analytics/analyticstokens/', browser.cookie)).status).toBe(303);
    await expectPostsRefused(app, services, browser.cookie, { _csrf: browser.csrf });
    // Logging in again gives a fresh, working session.
    const again = await login(app);
    expect(again.csrf).not.toBe(browser.csrf);
  });
});

describe('admin pages: CSRF', () => {
  it('refuses every form post of a logged-in admin without the session’s CSRF token, changing nothing', async () => {
    const { app, services } = await makeAdminApp();
    const browser = await login(app);
    const other = await login(app);
    await expectPostsRefused(app, services, browser.cookie, {});
    await expectPostsRefused(app, services, browser.cookie, { _csrf: '' });
    await expectPostsRefused(app, services, browser.cookie, { _csrf: 'x'.repeat(43) });
    await expectPostsRefused(app, services, browser.cookie, { _csrf: other.csrf });
    // A JSON body (what a cross-site fetch could send) carries no form field at all.
    const json = await app.request('/admin/analytics/analyticstokens/1/delete/', {
      method: 'POST',
      headers: { cookie: browser.cookie, 'content-type': 'application/json' },
      body: JSON.stringify({ _csrf: browser.csrf }),
    });
    expect(json.status).toBe(403);
    expect(await services.sql('SELECT id FROM tokens')).toHaveLength(1);
    // With the token, the same form goes through.
    const ok = await postForm(app, '/admin/analytics/analyticstokens/1/delete/', { _csrf: browser.csrf }, browser.cookie);
    expect(ok.status).toBe(303);
    expect(await services.sql('SELECT id FROM tokens')).toHaveLength(0);
  });
});

describe('admin pages: headers', () => {
  it('serves pages with a script-free CSP, no framing and no caching', async () => {
    const { app } = await makeAdminApp();
    const browser = await login(app);
    for (const path of ['/admin/login', ...PAGE_GETS]) {
      const res = await getPage(app, path, path === '/admin/login' ? undefined : browser.cookie);
      const csp = res.headers.get('content-security-policy') ?? '';
      expect(csp).toMatch(/^default-src 'none'; /);
      expect(csp).toContain("frame-ancestors 'none'");
      expect(csp).toContain("form-action 'self'");
      expect(csp).not.toMatch(/script-src|unsafe-inline/);
      expect(res.headers.get('x-frame-options')).toBe('DENY');
      expect(res.headers.get('cache-control')).toBe('no-store');
      const html = await res.text();
      expect(html).not.toMatch(/<script/i);
      expect(html).not.toMatch(/ on[a-z]+=/i);
    }
    // The rest of the app keeps its strict policy.
    expect((await app.request('/healthz')).headers.get('content-security-policy')).toBe("default-src 'none'; frame-ancestors 'none'");
  });
});
