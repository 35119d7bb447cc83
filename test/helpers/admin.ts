import type { Hono } from 'hono';
import { expect } from 'vitest';
import type { Clock } from '../../server/core/clock.ts';
import type { Config } from '../../server/core/config.ts';
import type { Logger } from '../../server/core/log.ts';
import { makeTestApp, type TestDatabase, type TestServices } from './app.ts';

/** The admin token of the admin tests (long enough for start-up's check). */
export const ADMIN_TOKEN = 'admin-token-for-tests-0123456789';

/** A logger that keeps every line, to check that no secret is ever logged. */
export function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    info: (message) => lines.push(message),
    warn: (message) => lines.push(message),
    error: (message, error) => lines.push(`${message} ${error instanceof Error ? (error.stack ?? error.message) : ''}`),
  };
}

export interface AdminAppOptions {
  config?: Partial<Config>;
  clock?: Clock;
  fetch?: typeof fetch;
  log?: Logger;
  database?: TestDatabase;
  gaTimeoutMs?: number;
}

/** An app with the admin on (unless the config says otherwise), over a fresh store (SQLite in memory by default). */
export async function makeAdminApp(options: AdminAppOptions = {}): Promise<{ app: Hono; services: TestServices; log: Logger & { lines: string[] } }> {
  const log = recordingLogger();
  const { app, services } = await makeTestApp({
    config: { adminToken: ADMIN_TOKEN, ...options.config },
    database: options.database,
    clock: options.clock,
    fetch: options.fetch,
    log: options.log ?? log,
    gaTimeoutMs: options.gaTimeoutMs,
  });
  return { app, services, log };
}

/** A request to the admin API with the bearer token (or `token`, or none when null). */
export function api(
  app: Hono,
  method: string,
  path: string,
  body?: unknown,
  token: string | null = ADMIN_TOKEN,
  extraHeaders: Record<string, string> = {},
): Promise<Response> {
  const headers: Record<string, string> = { ...extraHeaders };
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  return Promise.resolve(
    app.request(`/api/admin${path}`, { method, headers, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) }),
  );
}

/** The `name=value` part of each Set-Cookie header, by cookie name. */
export function cookiesOf(res: Response): Record<string, string> {
  const out: Record<string, string> = {};
  for (const header of res.headers.getSetCookie()) {
    const pair = header.split(';')[0] ?? '';
    const name = pair.slice(0, pair.indexOf('='));
    out[name] = pair;
  }
  return out;
}

/** The CSRF token of the first form on a page. */
export function csrfOf(html: string): string {
  const match = /name="_csrf" value="([^"]+)"/.exec(html);
  if (!match?.[1]) throw new Error('no CSRF field on the page');
  return match[1];
}

/** A logged-in admin browser: its session cookie and the session's CSRF token. */
export interface AdminBrowser {
  cookie: string;
  csrf: string;
}

/**
 * Logs in through the login form, as a browser does. `base` is where the admin is reached: `/admin` when
 * the app is served at the root, `<prefix>/admin` when a host mounts it under a prefix.
 */
export async function login(app: Hono, token: string = ADMIN_TOKEN, base: string = '/admin'): Promise<AdminBrowser> {
  const form = await app.request(`${base}/login`);
  expect(form.status).toBe(200);
  const loginCookie = cookiesOf(form).analytics_admin_login ?? '';
  const res = await postForm(app, `${base}/login`, { _csrf: csrfOf(await form.text()), token }, loginCookie);
  expect(res.status).toBe(303);
  const cookie = cookiesOf(res).analytics_admin_session;
  if (!cookie) throw new Error('no session cookie');
  const list = await app.request(`${base}/analytics/analyticstokens/`, { headers: { cookie } });
  expect(list.status).toBe(200);
  return { cookie, csrf: csrfOf(await list.text()) };
}

/** Posts a urlencoded form, as a browser submits one. */
export function postForm(app: Hono, path: string, fields: Record<string, string>, cookie?: string): Promise<Response> {
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
  if (cookie) headers.cookie = cookie;
  return Promise.resolve(app.request(path, { method: 'POST', headers, body: new URLSearchParams(fields).toString() }));
}

/** GETs a page with a cookie. */
export function getPage(app: Hono, path: string, cookie?: string): Promise<Response> {
  return Promise.resolve(app.request(path, { headers: cookie ? { cookie } : {} }));
}

/** Every link and form target on a page (`href` and `action` values, entities decoded). */
export function urlsOf(html: string): string[] {
  return [...html.matchAll(/\s(?:href|action)="([^"]*)"/g)].map((m) => (m[1] ?? '').replaceAll('&amp;', '&'));
}

/**
 * GA refuses the token's waiting events for good (the first `count` claimed, or all): they become the admin's failed
 * events. Returns the failed events' ids, oldest first (the ids the admin lists and retries).
 */
export async function failEvents(services: TestServices, tokenId: number, error: string, count = Infinity): Promise<number[]> {
  const now = services.clock();
  const claim = await services.store.claim({ tokenId, owner: 'test', now, leaseMs: 30_000, limit: 1000 });
  const ids = claim.rows.slice(0, count).map((row) => row.id);
  expect(ids.length).toBeGreaterThan(0);
  const settled = await services.store.settle({ claim, now, delivered: [], failed: [{ ids, error }], retried: [] });
  expect(settled.failed).toBe(ids.length);
  await services.store.endClaim(claim);
  const failed = await services.sql<{ id: number }>("SELECT id FROM outbox WHERE status = 'failed' AND token_id = ? ORDER BY id", [tokenId]);
  return failed.map((row) => Number(row.id));
}
