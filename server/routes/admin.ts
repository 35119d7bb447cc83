import { Hono, type Context, type MiddlewareHandler } from 'hono';
import { html } from 'hono/html';
import { HTTPException } from 'hono/http-exception';
import type { FC } from 'hono/jsx';
import { appendTrailingSlash } from 'hono/trailing-slash';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { ZodError } from 'zod';
import { adminBodyLimit, adminEnabled } from '../admin/access.ts';
import { failedLogins } from '../admin/failed-login.ts';
import { readForm } from '../admin/form.ts';
import { sameSecret } from '../admin/secrets.ts';
import { AdminSessions, CSRF_FIELD, requireSession, type SessionVariables } from '../admin/session.ts';
import { deliveryStatuses, failedDeliveries, installInfo, runDailyStatsNow } from '../admin/status.ts';
import { fieldErrors, tokenBodyFromForm } from '../admin/token-input.ts';
import { createToken, deleteToken, listTokens, parseNewToken, parseTokenPatch, tokenOr404, updateToken } from '../admin/token-store.ts';
import { validateToken, validationBlocker } from '../admin/validate.ts';
import {
  ADMIN_BASE,
  DeletePage,
  ErrorPage,
  FAILED_PATH,
  FailedPage,
  formValuesFromFields,
  formValuesOf,
  LOGIN_PATH,
  LoginPage,
  LogoutPage,
  NEW_TOKEN_VALUES,
  PAGE_CSP,
  TokenFormPage,
  TokenListPage,
  TOKENS_PATH,
  ValidatePage,
} from '../admin/views.tsx';
import type { Token } from '../db/schema.ts';
import type { Services } from '../services.ts';

type Env = { Variables: SessionVariables };

/** Fixed texts for the notice after a redirect: the query names one, so nothing user-made is reflected. */
const NOTICES: Record<string, (n: number) => string> = {
  added: () => 'Token added.',
  saved: () => 'Changes saved.',
  deleted: () => 'Token deleted.',
  retried: (n) => `${n} failed ${n === 1 ? 'event' : 'events'} put back in the queue.`,
  'logged-in': () => 'Logged in.',
  'stats-sent': (n) => `Daily stats queued: ${n} ${n === 1 ? 'event' : 'events'} for the tokens with daily stats on.`,
};

/**
 * The admin pages (HTML) under `/admin`: login, the token list with delivery status, add/change/delete,
 * validation against GA's debug endpoint, failed deliveries and their retry. Absent (404) without an admin token.
 */
export function adminRoutes(services: Services): Hono<Env> {
  const app = new Hono<Env>();
  const { adminToken, disabled } = services.config;
  app.use('*', adminEnabled({ adminToken }));
  app.use('*', adminBodyLimit());
  if (adminToken === undefined) return app;

  const sessions = new AdminSessions({ adminToken, clock: services.clock, trustProxy: services.config.trustProxy });
  const failedLogin = failedLogins(services.metrics);

  app.use('*', pageHeaders());
  app.use('*', async function adminIndex(c, next) {
    if (c.req.path === `${ADMIN_BASE}/`) return c.redirect(TOKENS_PATH, 303);
    await next();
  });
  app.use('*', appendTrailingSlash());
  app.onError((error, c) => {
    const loggedIn = c.get('session') !== undefined;
    if (error instanceof HTTPException) {
      return page(c, ErrorPage({ status: error.status, message: error.message || 'Refused.', loggedIn }), error.status);
    }
    services.log.error(`${c.req.method} ${c.req.path} failed`, error);
    return page(c, ErrorPage({ status: 500, message: 'Internal error; nothing more is known here.', loggedIn }), 500);
  });

  app.get('/', (c) => c.redirect(TOKENS_PATH, 303));

  app.get('/login', async (c) => {
    if (await sessions.read(c)) return c.redirect(TOKENS_PATH, 303);
    const next = safeNext(c.req.query('next'));
    return page(c, LoginPage({ csrf: await sessions.loginFormToken(c), next }));
  });

  app.post('/login', async (c) => {
    const fields = await readForm(c);
    const next = safeNext(fields.next);
    if (!(await sessions.checkLoginForm(c, fields[CSRF_FIELD]))) {
      const error = 'The login form was out of date (missing or wrong CSRF token). Try again.';
      return page(c, LoginPage({ csrf: await sessions.loginFormToken(c), next, error }), 403);
    }
    if (!sameSecret(fields.token ?? '', adminToken)) {
      await failedLogin('page');
      services.log.warn('admin: failed login');
      const error = 'That is not the admin token.';
      return page(c, LoginPage({ csrf: await sessions.loginFormToken(c), next, error }), 401);
    }
    await sessions.start(c);
    return c.redirect(next, 303);
  });

  const loggedIn = requireSession({ sessions, loginPath: LOGIN_PATH });
  app.use('/logout', loggedIn);
  app.use('/analytics/*', loggedIn);

  app.get('/logout', (c) => page(c, LogoutPage({ csrf: c.var.csrf })));

  app.post('/logout', (c) => {
    sessions.end(c, c.var.session);
    return c.redirect(LOGIN_PATH, 303);
  });

  app.get('/analytics/', (c) => c.redirect(TOKENS_PATH, 303));

  app.get('/analytics/analyticstokens/', (c) => {
    const tokens = listTokens(services);
    const statuses = deliveryStatuses(services, tokens);
    return page(
      c,
      TokenListPage({
        csrf: c.var.csrf,
        install: installInfo(services),
        tokens,
        statuses,
        failedTotal: statuses.reduce((sum, status) => sum + status.failed, 0),
        notice: noticeOf(c),
      }),
    );
  });

  app.get('/analytics/analyticstokens/add/', (c) =>
    page(c, TokenFormPage({ csrf: c.var.csrf, disabled, values: NEW_TOKEN_VALUES })),
  );

  app.post('/analytics/analyticstokens/add/', async (c) => {
    const fields = await readForm(c);
    try {
      const token = createToken(services, parseNewToken(tokenBodyFromForm(fields, 'add')));
      services.log.info(`admin: token ${token.id} added`);
      return c.redirect(`${TOKENS_PATH}?notice=added`, 303);
    } catch (error) {
      if (!(error instanceof ZodError)) throw error;
      const values = formValuesFromFields(fields);
      return page(c, TokenFormPage({ csrf: c.var.csrf, disabled, values, errors: fieldErrors(error) }), 400);
    }
  });

  const tokenOf = (c: Context<Env>): Token => tokenOr404(services, c.req.param('id'));

  app.get('/analytics/analyticstokens/:id/change/', (c) => {
    const token = tokenOf(c);
    return page(c, TokenFormPage({ csrf: c.var.csrf, disabled, token, values: formValuesOf(token) }));
  });

  app.post('/analytics/analyticstokens/:id/change/', async (c) => {
    const current = tokenOf(c);
    const fields = await readForm(c);
    try {
      const token = updateToken(services, current.id, parseTokenPatch(tokenBodyFromForm(fields, 'change'), current));
      if (!token) throw new HTTPException(404, { message: 'There is no such token (it may have been deleted).' });
      services.log.info(`admin: token ${token.id} changed`);
      return c.redirect(`${TOKENS_PATH}?notice=saved#token-${token.id}`, 303);
    } catch (error) {
      if (!(error instanceof ZodError)) throw error;
      const values = formValuesFromFields(fields);
      return page(c, TokenFormPage({ csrf: c.var.csrf, disabled, token: current, values, errors: fieldErrors(error) }), 400);
    }
  });

  app.get('/analytics/analyticstokens/:id/delete/', (c) => {
    const token = tokenOf(c);
    const [status] = deliveryStatuses(services, [token]);
    return page(c, DeletePage({ csrf: c.var.csrf, disabled, token, status }));
  });

  app.post('/analytics/analyticstokens/:id/delete/', (c) => {
    const token = tokenOf(c);
    deleteToken(services, token.id);
    services.log.info(`admin: token ${token.id} deleted`);
    return c.redirect(`${TOKENS_PATH}?notice=deleted`, 303);
  });

  app.get('/analytics/analyticstokens/:id/validate/', (c) => {
    const token = tokenOf(c);
    return page(c, ValidatePage({ csrf: c.var.csrf, disabled, token, blocker: validationBlocker(services, token) }));
  });

  app.post('/analytics/analyticstokens/:id/validate/', async (c) => {
    const token = tokenOf(c);
    const blocker = validationBlocker(services, token);
    if (blocker) return page(c, ValidatePage({ csrf: c.var.csrf, disabled, token, blocker }), 409);
    const results = await validateToken(services, token);
    return page(c, ValidatePage({ csrf: c.var.csrf, disabled, token, results }));
  });

  app.post('/analytics/analyticstokens/:id/retry/', async (c) => {
    const token = tokenOf(c);
    const n = services.outbox.retryFailed(token.id);
    services.log.info(`admin: ${n} failed events of token ${token.id} put back in the queue`);
    const back = (await readForm(c)).back === 'failed' ? FAILED_PATH : TOKENS_PATH;
    return c.redirect(`${back}?notice=retried&n=${n}`, 303);
  });

  app.post('/analytics/stats/run/', async (c) => {
    const run = await runDailyStatsNow(services);
    services.log.info(`admin: daily stats sent now (${run.queued} events queued)`);
    return c.redirect(`${TOKENS_PATH}?notice=stats-sent&n=${run.queued}`, 303);
  });

  app.get('/analytics/failed/', (c) => {
    const { total, items } = failedDeliveries(services, 200);
    return page(c, FailedPage({ csrf: c.var.csrf, disabled, total, items, notice: noticeOf(c) }));
  });

  return app;
}

/** The pages' own headers: their CSP (the app-wide one forbids the style sheet) and no caching of admin data. */
function pageHeaders(): MiddlewareHandler {
  return async function adminPageHeaders(c, next) {
    await next();
    c.res.headers.set('Content-Security-Policy', PAGE_CSP);
    c.res.headers.set('Cache-Control', 'no-store');
    c.res.headers.set('Referrer-Policy', 'no-referrer');
  };
}

/** An HTML page answer (components are plain functions: called here with type-checked props). */
function page(c: Context, node: ReturnType<FC>, status: ContentfulStatusCode = 200): Response | Promise<Response> {
  return c.html(html`<!DOCTYPE html>${node}`, status);
}

/** Where to go after logging in: an admin page, never anywhere else (no open redirect). */
function safeNext(next: string | undefined): string {
  if (next && /^\/admin\/[A-Za-z0-9/_-]*$/.test(next) && !next.includes('//') && !next.startsWith(`${LOGIN_PATH}`)) {
    return next.startsWith('/admin/logout') ? TOKENS_PATH : next;
  }
  return TOKENS_PATH;
}

function noticeOf(c: Context): string | undefined {
  const notice = NOTICES[c.req.query('notice') ?? ''];
  const n = Number.parseInt(c.req.query('n') ?? '0', 10);
  return notice?.(Number.isFinite(n) && n >= 0 ? n : 0);
}
