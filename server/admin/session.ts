import { createHash, randomBytes } from 'node:crypto';
import type { Context, MiddlewareHandler } from 'hono';
import { deleteCookie, getSignedCookie, setSignedCookie } from 'hono/cookie';
import { HTTPException } from 'hono/http-exception';
import type { Clock } from '../core/clock.ts';
import { formField } from './form.ts';
import type { AdminPathVariables } from './paths.ts';
import { deriveKey, sign, verifySignature } from './signing.ts';

/** A logged-in admin: a random id (only its hash is stored) and when the login runs out. */
export interface Session {
  id: string;
  expiresAt: number;
}

/** What the admin pages' handlers can read from the context once a session was checked. */
export interface SessionVariables {
  session: Session;
  /** The CSRF token every form of this session carries. */
  csrf: string;
}

/** Where logged-in sessions are kept, so that a logout holds across restarts and processes. */
export interface SessionStore {
  /** Remembers a new session (by the hash of its id) until `expiresAt`; forgets expired ones. */
  add(idHash: string, expiresAt: number, now: number): Promise<void>;
  /** True while the session is stored and not expired. */
  has(idHash: string, now: number): Promise<boolean>;
  remove(idHash: string): Promise<void>;
}

export interface SessionOptions {
  adminToken: string;
  /** The install's random signing secret (see `Identity`). */
  signingSecret: string;
  clock: Clock;
  store: SessionStore;
  /** Believe `X-Forwarded-Proto` (only behind a proxy the operator runs). */
  trustProxy: boolean;
  /** How long a login lasts; default 8 hours. */
  lifetimeMs?: number;
}

/** The session cookie; only sent to the admin's own base (`/admin`, or `<prefix>/admin` in a host). */
export const SESSION_COOKIE = 'analytics_admin_session';
/** A short-lived cookie that binds the login form's CSRF token to the browser that asked for it. */
export const LOGIN_COOKIE = 'analytics_admin_login';
/** Every cookie the admin sets, for tests that present each one in every other place. */
export const ADMIN_COOKIES = [SESSION_COOKIE, LOGIN_COOKIE] as const;
/** The form field that carries the CSRF token. */
export const CSRF_FIELD = '_csrf';

const DEFAULT_LIFETIME_MS = 8 * 3_600_000;
const LOGIN_FORM_LIFETIME_MS = 30 * 60_000;

/**
 * What each signed value is for. The purpose is inside what is signed and each is signed with a key of its
 * own, so a value minted for one place (the login form's cookie, say) is refused in every other.
 */
const PURPOSE = {
  session: 'admin-session',
  loginForm: 'admin-login-form',
  sessionCsrf: 'admin-session-csrf',
  loginCsrf: 'admin-login-csrf',
} as const;

/**
 * Which admin base a signed value was minted under: a host may mount the admin under several prefixes (one a
 * tenant, say), and what one of them signed is refused under every other.
 */
function baseTag(base: string): string {
  return createHash('sha256').update(`admin-base:${base}`).digest('base64url').slice(0, 22);
}

/** `<purpose>.<24 base64url characters>.<ms since epoch>.<base tag>`: the shape of both cookies' values. */
function cookieValue(purpose: string, id: string, expiresAt: number, base: string): string {
  return `${purpose}.${id}.${expiresAt}.${baseTag(base)}`;
}

/** A cookie's value as {@link cookieValue} made it for `purpose` under `base`, or undefined. */
function parseCookieValue(value: string | false | undefined, purpose: string, base: string): { id: string; expiresAt: number } | undefined {
  if (!value || !value.startsWith(`${purpose}.`)) return undefined;
  const match = /^([A-Za-z0-9_-]{24})\.(\d{1,16})\.([A-Za-z0-9_-]{22})$/.exec(value.slice(purpose.length + 1));
  if (!match?.[1] || !match[2] || match[3] !== baseTag(base)) return undefined;
  return { id: match[1], expiresAt: Number(match[2]) };
}

/**
 * Signed, expiring admin sessions, kept in the database by the hash of their id: a logout deletes the row, so
 * a kept copy of the cookie stays refused after a restart. The signing keys depend on the admin token (changing
 * it ends every session) and on the install's random secret (a signed value tells nothing about the token).
 */
export class AdminSessions {
  private readonly sessionKey: Uint8Array<ArrayBuffer>;
  private readonly loginFormKey: Uint8Array<ArrayBuffer>;
  private readonly sessionCsrfKey: Buffer;
  private readonly loginCsrfKey: Buffer;
  private readonly lifetimeMs: number;

  constructor(private readonly options: SessionOptions) {
    // Web Crypto (which signs hono's cookies) wants a plain ArrayBuffer-backed view.
    this.sessionKey = new Uint8Array(deriveKey(options.signingSecret, options.adminToken, PURPOSE.session));
    this.loginFormKey = new Uint8Array(deriveKey(options.signingSecret, options.adminToken, PURPOSE.loginForm));
    this.sessionCsrfKey = deriveKey(options.signingSecret, options.adminToken, PURPOSE.sessionCsrf);
    this.loginCsrfKey = deriveKey(options.signingSecret, options.adminToken, PURPOSE.loginCsrf);
    this.lifetimeMs = options.lifetimeMs ?? DEFAULT_LIFETIME_MS;
  }

  /**
   * Starts a session: stores it, sets the HttpOnly, SameSite=Strict cookie and forgets the login form's cookie.
   * `base` is the admin base the request came through: the cookies are sent nowhere else, and what they hold is
   * refused under any other base.
   */
  async start(c: Context, base: string): Promise<Session> {
    const now = this.options.clock();
    const session = { id: randomBytes(18).toString('base64url'), expiresAt: now + this.lifetimeMs };
    await this.options.store.add(hashId(session.id), session.expiresAt, now);
    await setSignedCookie(c, SESSION_COOKIE, cookieValue(PURPOSE.session, session.id, session.expiresAt, base), this.sessionKey, {
      ...this.cookieOptions(c, base),
      maxAge: Math.floor(this.lifetimeMs / 1000),
    });
    deleteCookie(c, LOGIN_COOKIE, this.cookieOptions(c, base));
    return session;
  }

  /**
   * The request's session, or undefined when the cookie is missing, tampered with, expired, logged out or made
   * under another admin base than `base`.
   */
  async read(c: Context, base: string): Promise<Session | undefined> {
    const session = parseCookieValue(await getSignedCookie(c, this.sessionKey, SESSION_COOKIE), PURPOSE.session, base);
    const now = this.options.clock();
    if (!session || session.expiresAt <= now || !(await this.options.store.has(hashId(session.id), now))) return undefined;
    return session;
  }

  /** Ends a session: the cookie is cleared and the stored session deleted, so a replayed copy is refused. */
  async end(c: Context, session: Session | undefined, base: string): Promise<void> {
    if (session) await this.options.store.remove(hashId(session.id));
    deleteCookie(c, SESSION_COOKIE, this.cookieOptions(c, base));
  }

  /** The CSRF token of a session: an HMAC of its id, so it needs no storage and dies with the session. */
  csrfFor(session: Session): string {
    return sign(this.sessionCsrfKey, `${PURPOSE.sessionCsrf}.${session.id}`);
  }

  /** True when `token` is the session's CSRF token. */
  checkCsrf(session: Session, token: string | undefined): boolean {
    return token !== undefined && verifySignature(this.sessionCsrfKey, `${PURPOSE.sessionCsrf}.${session.id}`, token);
  }

  /** Gives the login form under `base` a CSRF token, bound to a fresh short-lived cookie of this browser. */
  async loginFormToken(c: Context, base: string): Promise<string> {
    const nonce = randomBytes(18).toString('base64url');
    const expiresAt = this.options.clock() + LOGIN_FORM_LIFETIME_MS;
    await setSignedCookie(c, LOGIN_COOKIE, cookieValue(PURPOSE.loginForm, nonce, expiresAt, base), this.loginFormKey, {
      ...this.cookieOptions(c, base),
      maxAge: Math.floor(LOGIN_FORM_LIFETIME_MS / 1000),
    });
    return sign(this.loginCsrfKey, cookieValue(PURPOSE.loginCsrf, nonce, expiresAt, base));
  }

  /** True when `token` came with the login form this browser was given under `base`, and that form has not expired. */
  async checkLoginForm(c: Context, token: string | undefined, base: string): Promise<boolean> {
    const form = parseCookieValue(await getSignedCookie(c, this.loginFormKey, LOGIN_COOKIE), PURPOSE.loginForm, base);
    if (!form || token === undefined || form.expiresAt <= this.options.clock()) return false;
    return verifySignature(this.loginCsrfKey, cookieValue(PURPOSE.loginCsrf, form.id, form.expiresAt, base), token);
  }

  private cookieOptions(c: Context, path: string): { path: string; httpOnly: true; sameSite: 'Strict'; secure: boolean } {
    return { path, httpOnly: true, sameSite: 'Strict', secure: isHttps(c, this.options.trustProxy) };
  }
}

/** Sessions are stored by this hash of their id: a copy of the database holds no usable session. */
function hashId(id: string): string {
  return createHash('sha256').update(id).digest('base64url');
}

/** True when the browser reached us over https (directly, or through a trusted proxy that says so). */
export function isHttps(c: Context, trustProxy: boolean): boolean {
  if (new URL(c.req.url).protocol === 'https:') return true;
  return trustProxy && c.req.header('x-forwarded-proto')?.split(',')[0]?.trim() === 'https';
}

export interface RequireSessionOptions {
  sessions: AdminSessions;
}

/**
 * Lets only logged-in admins through, and only with the session's CSRF token on anything but GET/HEAD.
 * A GET without a session is sent to this admin base's login page (and back afterwards); any other
 * request is refused with 403. Needs `paths` and `pathInAdmin` (see `adminLocation`).
 */
export function requireSession(
  options: RequireSessionOptions,
): MiddlewareHandler<{ Variables: SessionVariables & AdminPathVariables }> {
  const { sessions } = options;
  return async function adminSession(c, next) {
    const session = await sessions.read(c, c.var.paths.base);
    const safe = c.req.method === 'GET' || c.req.method === 'HEAD';
    if (!session) {
      if (safe) {
        const back = `${c.var.paths.base}${c.var.pathInAdmin}`;
        return c.redirect(`${c.var.paths.login}?next=${encodeURIComponent(back)}`, 303);
      }
      throw new HTTPException(403, { message: 'Your admin session has ended. Log in again; nothing was changed.' });
    }
    if (!safe && !sessions.checkCsrf(session, await formField(c, CSRF_FIELD))) {
      throw new HTTPException(403, { message: 'This form is out of date (missing or wrong CSRF token); nothing was changed.' });
    }
    c.set('session', session);
    c.set('csrf', sessions.csrfFor(session));
    await next();
  };
}
