import { servicesOf } from '../../server/services.ts';
import { Hono } from 'hono';
import { afterEach, describe, expect, it } from 'vitest';
import { createAnalytics, type Analytics } from '../../server/index.ts';
import { silentLogger } from '../../server/core/log.ts';
import type { Services } from '../../server/services.ts';
import { ADMIN_TOKEN, cookiesOf, csrfOf, getPage, login, makeAdminApp, postForm, urlsOf } from '../helpers/admin.ts';

let instances: Analytics[] = [];
afterEach(async () => {
  await Promise.all(instances.map((analytics) => analytics.stop()));
  instances = [];
});

/** A host app with the analytics app mounted under `prefix`, as README.md and examples/host-app.ts do it. */
async function hostApp(prefix: string): Promise<{ app: Hono; services: Services }> {
  const analytics = await createAnalytics({ database: ':memory:', config: { adminToken: ADMIN_TOKEN }, env: {}, log: silentLogger });
  instances.push(analytics);
  const app = new Hono();
  app.get('/', (c) => c.text('the host’s own home page'));
  app.route(prefix, analytics.app);
  return { app, services: servicesOf(analytics) };
}

const HTML_ENTITIES: Record<string, string> = { '&amp;': '&', '&quot;': '"', '&#39;': "'", '&lt;': '<', '&gt;': '>' };
const unescape = (value: string): string => value.replace(/&(?:amp|quot|#39|lt|gt);/g, (entity) => HTML_ENTITIES[entity] ?? entity);

/** The fields a browser submits with the form whose action is `action`: inputs (ticked checkboxes only) and text areas. */
function formFields(html: string, action: string): Record<string, string> {
  const start = html.indexOf(`action="${action}"`);
  if (start < 0) throw new Error(`no form posts to ${action}`);
  const form = html.slice(start, html.indexOf('</form>', start));
  const fields: Record<string, string> = {};
  for (const [tag] of form.matchAll(/<input\b[^>]*>/g)) {
    const attr = (name: string) => new RegExp(`\\s${name}(?:="([^"]*)")?`).exec(tag);
    const name = attr('name')?.[1];
    if (name === undefined) continue;
    if (attr('type')?.[1] === 'checkbox' && !attr('checked')) continue;
    fields[name] = unescape(attr('value')?.[1] ?? 'on');
  }
  for (const [, name, text] of form.matchAll(/<textarea\b[^>]*\sname="([^"]*)"[^>]*>([^<]*)<\/textarea>/g)) {
    if (name !== undefined) fields[name] = unescape(text ?? '');
  }
  return fields;
}

/** The table row of one token on the list page. */
function rowOf(html: string, id: number): string {
  const start = html.indexOf(`<tr id="token-${id}">`);
  if (start < 0) throw new Error(`token ${id} is not in the list`);
  return html.slice(start, html.indexOf('</tr>', start));
}

/** The attributes of a Set-Cookie header, by lower-cased name (`true` for flags). */
function cookieAttributes(header: string): Record<string, string | true> {
  const out: Record<string, string | true> = {};
  for (const part of header.split(';').slice(1)) {
    const [name = '', ...value] = part.trim().split('=');
    out[name.toLowerCase()] = value.length > 0 ? value.join('=') : true;
  }
  return out;
}

interface Visit {
  /** The path (and query) asked for. */
  url: string;
  res: Response;
  html: string;
}

/**
 * A browser over `app.request`: keeps cookies and sends each only where its Path matches, as a browser
 * does, and records every Location, Set-Cookie and link or form target it is given.
 */
class Visitor {
  readonly locations: string[] = [];
  readonly setCookies: string[] = [];
  readonly urls: string[] = [];
  private readonly jar = new Map<string, { pair: string; path: string }>();

  constructor(private readonly app: Hono) {}

  get(url: string): Promise<Visit> {
    return this.send(url, { method: 'GET' });
  }

  post(url: string, fields: Record<string, string>): Promise<Visit> {
    return this.send(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(fields).toString(),
    });
  }

  /** Follows redirects (as GETs, without the fragment) until a page answers. */
  async follow(visit: Visit): Promise<Visit> {
    let current = visit;
    for (let hops = 0; current.res.status >= 300 && current.res.status < 400; hops++) {
      if (hops === 5) throw new Error(`redirect loop at ${current.url}`);
      const location = current.res.headers.get('location');
      if (!location) throw new Error(`a ${current.res.status} without Location at ${current.url}`);
      current = await this.get(location.split('#')[0] ?? location);
    }
    return current;
  }

  private async send(url: string, init: RequestInit): Promise<Visit> {
    const path = url.split('?')[0] ?? url;
    const cookies = [...this.jar.values()].filter((c) => path === c.path || path.startsWith(`${c.path}/`)).map((c) => c.pair);
    const headers = new Headers(init.headers);
    if (cookies.length > 0) headers.set('cookie', cookies.join('; '));
    const res = await this.app.request(url, { ...init, headers });
    const location = res.headers.get('location');
    if (location !== null) this.locations.push(location);
    for (const header of res.headers.getSetCookie()) {
      this.setCookies.push(header);
      const pair = header.split(';')[0] ?? '';
      const name = pair.slice(0, pair.indexOf('='));
      const attributes = cookieAttributes(header);
      if (attributes['max-age'] === '0') this.jar.delete(name);
      else this.jar.set(name, { pair, path: typeof attributes.path === 'string' ? attributes.path : '/' });
    }
    const html = await res.text();
    if ((res.headers.get('content-type') ?? '').startsWith('text/html')) this.urls.push(...urlsOf(html));
    return { url, res, html };
  }
}

/**
 * The admin as a browser uses it, from `base` (where the admin is reached): in through the front door,
 * log in, open the list, untick token 1's page views through its change form, log out.
 */
async function adminFlow(app: Hono, services: Services, base: string): Promise<Visitor> {
  const browser = new Visitor(app);
  const list = `${base}/analytics/analyticstokens/`;

  // Without a session the admin's front door ends on the login form, which leads back to the list.
  const form = await browser.follow(await browser.get(`${base}/`));
  expect(form.res.status).toBe(200);
  expect(form.url).toBe(`${base}/login?next=${encodeURIComponent(list)}`);
  const loginFields = formFields(form.html, `${base}/login`);
  expect(loginFields.next).toBe(list);

  const home = await browser.follow(await browser.post(`${base}/login`, { ...loginFields, token: ADMIN_TOKEN }));
  expect(home.res.status).toBe(200);
  expect(home.url).toBe(list);
  expect(home.html).toContain('<h1>Analytics tokens</h1>');

  // Token 1's change form, reached through its link on the list.
  const changePath = `${list}1/change/`;
  expect(urlsOf(rowOf(home.html, 1))).toContain(changePath);
  const change = await browser.get(changePath);
  expect(change.res.status).toBe(200);
  const fields = formFields(change.html, changePath);
  expect(fields).toMatchObject({ name: 'Project team', sendPageViews: 'on', sendTaskEvents: 'on', sendDailyStats: 'on' });
  delete fields.sendPageViews;

  const saved = await browser.post(changePath, fields);
  expect(saved.res.status).toBe(303);
  expect(saved.res.headers.get('location')).toBe(`${list}?notice=saved#token-1`);
  const after = await browser.follow(saved);
  expect(after.html).toContain('Changes saved.');
  expect(rowOf(after.html, 1)).toContain('<td data-switch="sendPageViews"><span class="off">off</span></td>');
  expect(await services.store.findToken(1)).toMatchObject({ sendPageViews: false, sendTaskEvents: true });

  // Refusals are pages of the same admin: their links stay under the base too.
  const missing = await browser.get(`${list}999/change/`);
  expect(missing.res.status).toBe(404);
  expect(urlsOf(missing.html)).toContain(list);
  const forged = await browser.post(changePath, { ...fields, _csrf: 'forged' });
  expect(forged.res.status).toBe(403);

  // Log out with the header's form: back on the login page, and the session is gone.
  const out = await browser.post(`${base}/logout`, formFields(after.html, `${base}/logout`));
  expect(out.res.status).toBe(303);
  expect(out.res.headers.get('location')).toBe(`${base}/login`);
  expect(cookiesOf(out.res).analytics_admin_session).toBe('analytics_admin_session=');
  const loggedOut = await browser.get(list);
  expect(loggedOut.res.status).toBe(303);
  expect(loggedOut.res.headers.get('location')).toBe(`${base}/login?next=${encodeURIComponent(list)}`);
  return browser;
}

/** Every URL the admin handed out stays under `base`, and every cookie is scoped to it, HttpOnly and SameSite=Strict. */
function expectConfinedTo(browser: Visitor, base: string): void {
  expect(browser.urls.length).toBeGreaterThan(10);
  for (const url of browser.urls) expect(url.startsWith(`${base}/`), url).toBe(true);
  expect(browser.locations.length).toBeGreaterThan(5);
  for (const location of browser.locations) expect(location.startsWith(`${base}/`), location).toBe(true);
  expect(browser.setCookies.length).toBeGreaterThanOrEqual(4);
  for (const header of browser.setCookies) {
    const attributes = cookieAttributes(header);
    expect(attributes.path, header).toBe(base);
    expect(attributes.httponly, header).toBe(true);
    expect(attributes.samesite, header).toBe('Strict');
    expect(attributes.domain, header).toBeUndefined();
  }
}

/** Logs in with a chosen `next` and returns where the login sends the browser. */
async function loginLeadsTo(app: Hono, base: string, next: string): Promise<string | null> {
  const form = await app.request(`${base}/login`);
  const res = await postForm(app, `${base}/login`, { _csrf: csrfOf(await form.text()), token: ADMIN_TOKEN, next }, cookiesOf(form).analytics_admin_login);
  expect(res.status).toBe(303);
  return res.headers.get('location');
}

describe('admin under a host’s mount prefix', () => {
  it('logs in, changes token 1 and logs out with every link, redirect and cookie under /analytics/admin', async () => {
    const { app, services } = await hostApp('/analytics');
    const browser = await adminFlow(app, services, '/analytics/admin');
    expectConfinedTo(browser, '/analytics/admin');
    // The host's own routes are untouched, and the admin is not reachable outside the mount.
    expect(await (await app.request('/')).text()).toBe('the host’s own home page');
    expect((await app.request('/admin/login')).status).toBe(404);
  });

  it('works the same at the root, where the collector serves it', async () => {
    const { app, services } = await makeAdminApp();
    const browser = await adminFlow(app, services, '/admin');
    expectConfinedTo(browser, '/admin');
  });

  it('works under a mount prefix with a parameter, each request under its own base', async () => {
    const { app, services } = await hostApp('/:tenant/analytics');
    const browser = await adminFlow(app, services, '/acme/analytics/admin');
    expectConfinedTo(browser, '/acme/analytics/admin');
    // A session cookie is scoped to the base it was given under.
    const session = await login(app, ADMIN_TOKEN, '/acme/analytics/admin');
    expect((await getPage(app, '/acme/analytics/admin/analytics/failed/', session.cookie)).status).toBe(200);
  });

  it('refuses a session, a login form or a CSRF token under any other base than the one it was made under', async () => {
    // One install mounted twice, as a host with tenants would: the same admin token opens each base, yet what one
    // base signed opens no other, even sent by hand past the cookies' Path.
    const analytics = await createAnalytics({ database: ':memory:', config: { adminToken: ADMIN_TOKEN }, env: {}, log: silentLogger });
    instances.push(analytics);
    const app = new Hono();
    app.route('/:tenant/analytics', analytics.app);
    app.route('/other', analytics.app);
    const services = servicesOf(analytics);
    const before = JSON.stringify(await services.store.listTokens());
    const session = await login(app, ADMIN_TOKEN, '/acme/analytics/admin');
    for (const base of ['/globex/analytics/admin', '/other/admin']) {
      for (const page of ['/analytics/analyticstokens/', '/analytics/failed/', '/analytics/about/']) {
        const res = await getPage(app, `${base}${page}`, session.cookie);
        expect(res.status, `${base}${page}`).toBe(303);
        expect(res.headers.get('location'), `${base}${page}`).toMatch(new RegExp(`^${base}/login\\?next=`));
      }
      const change = await postForm(app, `${base}/analytics/analyticstokens/1/change/`, { _csrf: session.csrf, name: 'Taken over', measurementId: 'G-ATTACKER1' }, session.cookie);
      expect(change.status, `${base}: change`).toBe(403);
      // The login form of one base does not log in under another, with the right admin token.
      const form = await app.request('/acme/analytics/admin/login');
      const loggedIn = await postForm(app, `${base}/login`, { _csrf: csrfOf(await form.text()), token: ADMIN_TOKEN }, cookiesOf(form).analytics_admin_login);
      expect(loggedIn.status, `${base}: login with another base's form`).toBe(403);
      expect(cookiesOf(loggedIn).analytics_admin_session).toBeUndefined();
    }
    expect(JSON.stringify(await services.store.listTokens())).toBe(before);
    // Each works under its own base.
    expect((await getPage(app, '/acme/analytics/admin/analytics/about/', session.cookie)).status).toBe(200);
    await login(app, ADMIN_TOKEN, '/other/admin');
  });

  it('keeps the session cookie Secure over https under the prefix', async () => {
    const { app } = await hostApp('/analytics');
    const form = await app.request('https://host.example/analytics/admin/login');
    expect(form.headers.getSetCookie()[0]).toMatch(/; Path=\/analytics\/admin; HttpOnly; Secure; SameSite=Strict$/);
  });

  it('after login goes only to a page under the admin base it was reached through', async () => {
    const { app } = await hostApp('/analytics');
    const base = '/analytics/admin';
    const list = `${base}/analytics/analyticstokens/`;
    expect(await loginLeadsTo(app, base, `${base}/analytics/failed/`)).toBe(`${base}/analytics/failed/`);
    expect(await loginLeadsTo(app, base, `${list}1/change/`)).toBe(`${list}1/change/`);
    for (const next of [
      '/admin/analytics/failed/',
      '/analytics/adminx/analytics/failed/',
      '/analytics/collect',
      `${base}//evil.example/`,
      `${base}/../../evil`,
      `${base}/login`,
      `${base}/logout`,
      '//evil.example/analytics/admin/',
      '/\\evil.example/analytics/admin/',
      'https://evil.example/analytics/admin/',
      '',
    ]) {
      expect(await loginLeadsTo(app, base, next), next).toBe(list);
    }

    const tenants = await hostApp('/:tenant/analytics');
    const acme = '/acme/analytics/admin';
    expect(await loginLeadsTo(tenants.app, acme, `${acme}/analytics/failed/`)).toBe(`${acme}/analytics/failed/`);
    expect(await loginLeadsTo(tenants.app, acme, '/other/analytics/admin/analytics/failed/')).toBe(`${acme}/analytics/analyticstokens/`);
  });

  it('never turns a prefix parameter into a link elsewhere or a cookie attribute', async () => {
    const { app } = await hostApp('/:tenant/analytics');
    // A backslash in the parameter would make `/\evil.example/…` (another host to a browser): it is encoded.
    const slash = await app.request('/%5Cevil.example/analytics/admin/');
    expect(slash.status).toBe(303);
    expect(slash.headers.get('location')).toBe('/%5Cevil.example/analytics/admin/analytics/analyticstokens/');
    const form = await app.request('/%5Cevil.example/analytics/admin/login');
    expect(form.status).toBe(200);
    for (const url of urlsOf(await form.text())) expect(url.startsWith('/%5Cevil.example/analytics/admin/'), url).toBe(true);
    expect(cookieAttributes(form.headers.getSetCookie()[0] ?? '').path).toBe('/%5Cevil.example/analytics/admin');

    // A semicolon would end the cookie's Path and start an attribute of the caller's choosing: it is encoded too.
    for (const path of ['/a;Domain=evil.example/analytics/admin/login', '/a%3BDomain=evil.example/analytics/admin/login']) {
      const res = await app.request(path);
      expect(res.status, path).toBe(200);
      const header = res.headers.getSetCookie()[0] ?? '';
      expect(cookieAttributes(header), header).toMatchObject({ path: '/a%3BDomain=evil.example/analytics/admin', httponly: true, samesite: 'Strict' });
      expect(cookieAttributes(header).domain, header).toBeUndefined();
    }
  });
});
