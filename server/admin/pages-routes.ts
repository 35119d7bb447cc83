import { Hono, type Context, type MiddlewareHandler } from 'hono';
import { html } from 'hono/html';
import { HTTPException } from 'hono/http-exception';
import type { FC } from 'hono/jsx';
import { appendTrailingSlash } from 'hono/trailing-slash';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { ZodError } from 'zod';
import { refuseOverBudget, type CredentialGuard } from '../core/credential-guard.ts';
import { RetryLaterError, sameSecret } from '../core/http.ts';
import { internalErrorLog, REPEATED_LOG_EVERY_MS } from '../core/log.ts';
import type { Services } from '../services.ts';
import { RETRY_AFTER_S, StoreUnavailableError } from '../store/errors.ts';
import { skipReason } from '../tokens/team-token.ts';
import { parseNewToken, parseTokenPatch } from '../tokens/token-input.ts';
import type { Token } from '../tokens/tokens.ts';
import { aboutData } from './about.ts';
import { adminBodyLimit, adminEnabled, tokenOr404 } from './access.ts';
import { deliveryHistories } from './delivery-history.ts';
import { readForm } from './form.ts';
import { adminLocation, safeNext, type AdminPathVariables } from './paths.ts';
import { AdminSessions, CSRF_FIELD, requireSession, type SessionVariables } from './session.ts';
import { readableSent, sentRequestsOf } from './sent.ts';
import { storeSessions } from './session-store.ts';
import { deliveryStatuses, failedDeliveries, installInfo } from './status.ts';
import { fieldErrors, formValuesFromFields, formValuesOf, NEW_TOKEN_VALUES, tokenBodyFromForm } from './token-form.ts';
import { validateToken, validationBlocker } from './validate.ts';
import { LoginPage, LogoutPage } from './views/auth-pages.tsx';
import { AboutPage } from './views/about-page.tsx';
import { ErrorPage } from './views/error-page.tsx';
import { FailedPage } from './views/failed-page.tsx';
import { PAGE_CSP } from './views/layout.tsx';
import { SentPage } from './views/sent-page.tsx';
import { DeletePage, TokenFormPage, TokenListPage } from './views/token-pages.tsx';
import { ValidatePage } from './views/validate-page.tsx';

type Env = { Variables: SessionVariables & AdminPathVariables };

/**
 * Fixed texts for the notice after a redirect: the query names one, so nothing user-made is reflected. A map, not
 * an object: a name such as `__proto__` or `valueOf` must find nothing.
 */
const NOTICES = new Map<string, (n: number) => string>([
  ['added', () => 'Token added.'],
  ['saved', () => 'Changes saved.'],
  ['deleted', () => 'Token deleted.'],
  ['retried', (n) => `${n} failed ${n === 1 ? 'event' : 'events'} put back in the queue.`],
  ['logged-in', () => 'Logged in.'],
  ['stats-sent', (n) => `Daily stats queued: ${n} ${n === 1 ? 'event' : 'events'} for the tokens with daily stats on.`],
]);

/**
 * The admin pages (HTML) under `/admin`: login, the token list with delivery status and charts, add/change/delete,
 * validation against GA's debug endpoint, what was sent to a token, what is sent at all, failed deliveries and
 * their retry. Absent (404) without an admin token.
 * A host that mounts the app under a prefix gets them under `<prefix>/admin`: every link, form action,
 * redirect and cookie path is built per request from where the admin was reached.
 */
export function adminRoutes(services: Services, guard: CredentialGuard): Hono<Env> {
  const app = new Hono<Env>();
  const { adminToken, disabled } = services.config;
  app.use('*', adminEnabled({ adminToken }));
  app.use('*', adminLocation());
  app.use('*', adminBodyLimit());
  if (adminToken === undefined) return app;

  const { trustProxy } = services.config;
  const sessions = new AdminSessions({
    adminToken,
    signingSecret: services.identity.signingSecret,
    clock: services.clock,
    store: storeSessions(services.store),
    trustProxy,
  });

  app.use('*', pageHeaders());
  // An address that has used up the shared budget of wrong credentials gets 429, whatever it sends.
  app.use('*', async function credentialBudget(c, next) {
    refuseOverBudget(c, guard, trustProxy);
    await next();
  });
  app.use('*', async function adminIndex(c, next) {
    if (c.var.pathInAdmin === '/') return c.redirect(c.var.paths.tokens, 303);
    await next();
  });
  app.use('*', appendTrailingSlash());
  // As the app's own handler: a 500 is logged with its stack, at most once every 10 s per route and kind.
  const noteInternal = internalErrorLog(services.log, services.clock, REPEATED_LOG_EVERY_MS);
  app.onError((error, c) => {
    const loggedIn = c.get('session') !== undefined;
    const paths = c.var.paths;
    if (error instanceof HTTPException) {
      if (error instanceof RetryLaterError) c.header('Retry-After', String(error.retryAfterS));
      return page(c, ErrorPage({ paths, status: error.status, message: error.message || 'Refused.', loggedIn }), error.status);
    }
    if (error instanceof StoreUnavailableError) {
      c.header('Retry-After', String(RETRY_AFTER_S));
      const message = `The database is unavailable (${error.message}). Nothing was changed; try again in a moment.`;
      return page(c, ErrorPage({ paths, status: 503, message, loggedIn }), 503);
    }
    noteInternal({ method: c.req.method, route: c.req.routePath }, error);
    return page(c, ErrorPage({ paths, status: 500, message: 'Internal error; nothing more is known here.', loggedIn }), 500);
  });

  app.get('/', async (c) => c.redirect(c.var.paths.tokens, 303));

  app.get('/login', async (c) => {
    const { paths } = c.var;
    if (await sessions.read(c, paths.base)) return c.redirect(paths.tokens, 303);
    const next = safeNext(c.req.query('next'), paths);
    return page(c, LoginPage({ paths, csrf: await sessions.loginFormToken(c, paths.base), next }));
  });

  app.post('/login', async (c) => {
    const { paths } = c.var;
    const fields = await readForm(c);
    const next = safeNext(fields.next, paths);
    if (!(await sessions.checkLoginForm(c, fields[CSRF_FIELD], paths.base))) {
      const error = 'The login form was out of date (missing or wrong CSRF token). Try again.';
      return page(c, LoginPage({ paths, csrf: await sessions.loginFormToken(c, paths.base), next, error }), 403);
    }
    // Looked at again after reading the body: requests that passed the first look together must not each
    // get a guess checked before any of their failures is counted.
    refuseOverBudget(c, guard, trustProxy);
    if (!sameSecret(fields.token ?? '', adminToken)) {
      await guard.failed(guard.addressOf(c, trustProxy), 'page');
      const error = 'That is not the admin token.';
      return page(c, LoginPage({ paths, csrf: await sessions.loginFormToken(c, paths.base), next, error }), 401);
    }
    await sessions.start(c, paths.base);
    return c.redirect(next, 303);
  });

  const loggedIn = requireSession({ sessions });
  app.use('/logout', loggedIn);
  app.use('/analytics/*', loggedIn);

  app.get('/logout', async (c) => page(c, LogoutPage({ paths: c.var.paths, csrf: c.var.csrf })));

  app.post('/logout', async (c) => {
    await sessions.end(c, c.var.session, c.var.paths.base);
    return c.redirect(c.var.paths.login, 303);
  });

  app.get('/analytics/', async (c) => c.redirect(c.var.paths.tokens, 303));

  app.get('/analytics/analyticstokens/', async (c) => {
    const tokens = await services.tokens.list();
    const [statuses, histories] = await Promise.all([
      deliveryStatuses(services, tokens),
      deliveryHistories(services, tokens.map((token) => token.id)),
    ]);
    return page(
      c,
      TokenListPage({
        paths: c.var.paths,
        csrf: c.var.csrf,
        install: await installInfo(services),
        tokens,
        statuses,
        histories,
        failedTotal: statuses.reduce((sum, status) => sum + status.failed, 0),
        notice: noticeOf(c),
      }),
    );
  });

  app.get('/analytics/analyticstokens/add/', async (c) =>
    page(c, TokenFormPage({ paths: c.var.paths, csrf: c.var.csrf, disabled, values: NEW_TOKEN_VALUES })),
  );

  app.post('/analytics/analyticstokens/add/', async (c) => {
    const fields = await readForm(c);
    try {
      const token = await services.tokens.create(parseNewToken(tokenBodyFromForm(fields, 'add')));
      services.log.info(`admin: token ${token.id} added`);
      return c.redirect(`${c.var.paths.tokens}?notice=added`, 303);
    } catch (error) {
      if (!(error instanceof ZodError)) throw error;
      const values = formValuesFromFields(fields);
      return page(c, TokenFormPage({ paths: c.var.paths, csrf: c.var.csrf, disabled, values, errors: fieldErrors(error) }), 400);
    }
  });

  const tokenOf = (c: Context<Env>): Promise<Token> => tokenOr404(services.tokens, c.req.param('id'));

  app.get('/analytics/analyticstokens/:id/change/', async (c) => {
    const token = await tokenOf(c);
    return page(c, TokenFormPage({ paths: c.var.paths, csrf: c.var.csrf, disabled, token, values: formValuesOf(token) }));
  });

  app.post('/analytics/analyticstokens/:id/change/', async (c) => {
    const current = await tokenOf(c);
    const fields = await readForm(c);
    try {
      const token = await services.tokens.update(current.id, parseTokenPatch(tokenBodyFromForm(fields, 'change'), current));
      if (!token) throw new HTTPException(404, { message: 'There is no such token (it may have been deleted).' });
      services.log.info(`admin: token ${token.id} changed`);
      return c.redirect(`${c.var.paths.tokens}?notice=saved#token-${token.id}`, 303);
    } catch (error) {
      if (!(error instanceof ZodError)) throw error;
      const values = formValuesFromFields(fields);
      return page(
        c,
        TokenFormPage({ paths: c.var.paths, csrf: c.var.csrf, disabled, token: current, values, errors: fieldErrors(error) }),
        400,
      );
    }
  });

  app.get('/analytics/analyticstokens/:id/delete/', async (c) => {
    const token = await tokenOf(c);
    const [status] = await deliveryStatuses(services, [token]);
    return page(c, DeletePage({ paths: c.var.paths, csrf: c.var.csrf, disabled, token, status }));
  });

  app.post('/analytics/analyticstokens/:id/delete/', async (c) => {
    const token = await tokenOf(c);
    await services.tokens.delete(token.id);
    services.log.info(`admin: token ${token.id} deleted`);
    return c.redirect(`${c.var.paths.tokens}?notice=deleted`, 303);
  });

  app.get('/analytics/analyticstokens/:id/validate/', async (c) => {
    const token = await tokenOf(c);
    return page(c, ValidatePage({ paths: c.var.paths, csrf: c.var.csrf, disabled, token, blocker: validationBlocker(services, token) }));
  });

  app.post('/analytics/analyticstokens/:id/validate/', async (c) => {
    const token = await tokenOf(c);
    const blocker = validationBlocker(services, token);
    if (blocker) return page(c, ValidatePage({ paths: c.var.paths, csrf: c.var.csrf, disabled, token, blocker }), 409);
    const results = await validateToken(services, token);
    return page(c, ValidatePage({ paths: c.var.paths, csrf: c.var.csrf, disabled, token, results }));
  });

  app.get('/analytics/analyticstokens/:id/sent/', async (c) => {
    const token = await tokenOf(c);
    const requests = (await sentRequestsOf(services, token.id)).map(readableSent);
    return page(c, SentPage({ paths: c.var.paths, csrf: c.var.csrf, disabled, token, requests, skipped: skipReason(token) }));
  });

  app.get('/analytics/about/', async (c) => page(c, AboutPage({ paths: c.var.paths, csrf: c.var.csrf, data: await aboutData(services) })));

  app.post('/analytics/analyticstokens/:id/retry/', async (c) => {
    const token = await tokenOf(c);
    const n = await services.relay.retryFailed(token.id);
    services.log.info(`admin: ${n} failed events of token ${token.id} put back in the queue`);
    const back = (await readForm(c)).back === 'failed' ? c.var.paths.failed : c.var.paths.tokens;
    return c.redirect(`${back}?notice=retried&n=${n}`, 303);
  });

  app.post('/analytics/stats/run/', async (c) => {
    const run = await services.dailyStats.runNow();
    services.log.info(`admin: daily stats sent now (${run.queued} events queued)`);
    return c.redirect(`${c.var.paths.tokens}?notice=stats-sent&n=${run.queued}`, 303);
  });

  app.get('/analytics/failed/', async (c) => {
    const { total, items } = await failedDeliveries(services, 200);
    return page(c, FailedPage({ paths: c.var.paths, csrf: c.var.csrf, disabled, total, items, notice: noticeOf(c) }));
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

function noticeOf(c: Context): string | undefined {
  const notice = NOTICES.get(c.req.query('notice') ?? '');
  const n = Number.parseInt(c.req.query('n') ?? '0', 10);
  return notice?.(Number.isFinite(n) && n >= 0 ? n : 0);
}
