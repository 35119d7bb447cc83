import { randomBytes } from 'node:crypto';
import type { Context, MiddlewareHandler } from 'hono';
import { deleteCookie, getSignedCookie, setSignedCookie } from 'hono/cookie';
import { HTTPException } from 'hono/http-exception';
import type { Clock } from '../clock.ts';
import { formField } from './form.ts';
import type { AdminPathVariables } from './paths.ts';
import { deriveKey, sign, verifySignature } from './secrets.ts';

/** A logged-in admin: a random id (never stored) and when the login runs out. */
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

export interface SessionOptions {
  adminToken: string;
  clock: Clock;
  /** Believe `X-Forwarded-Proto` (only behind a proxy the operator runs). */
  trustProxy: boolean;
  /** How long a login lasts; default 8 hours. */
  lifetimeMs?: number;
}

/** The session cookie; only sent to the admin's own base (`/admin`, or `<prefix>/admin` in a host). */
export const SESSION_COOKIE = 'analytics_admin_session';
/** A short-lived cookie that binds the login form's CSRF token to the browser that asked for it. */
export const LOGIN_COOKIE = 'analytics_admin_login';
/** The form field that carries the CSRF token. */
export const CSRF_FIELD = '_csrf';

const DEFAULT_LIFETIME_MS = 8 * 3_600_000;
const LOGIN_FORM_LIFETIME_MS = 30 * 60_000;

/**
 * Signed, expiring admin sessions without server-side storage. The signing keys are derived from the
 * admin token, so changing the token logs everyone out; a logout is remembered (in memory) until the
 * session would have run out anyway.
 */
export class AdminSessions {
  private readonly cookieKey: Uint8Array<ArrayBuffer>;
  private readonly csrfKey: Buffer;
  private readonly lifetimeMs: number;
  private readonly revoked = new Map<string, number>();

  constructor(private readonly options: SessionOptions) {
    // Web Crypto (which signs hono's cookies) wants a plain ArrayBuffer-backed view.
    this.cookieKey = new Uint8Array(deriveKey(options.adminToken, 'session-cookie'));
    this.csrfKey = deriveKey(options.adminToken, 'csrf');
    this.lifetimeMs = options.lifetimeMs ?? DEFAULT_LIFETIME_MS;
  }

  /**
   * Starts a session: sets the HttpOnly, SameSite=Strict cookie and forgets the login form's cookie.
   * `cookiePath` is the admin base the request came through; the cookies are sent nowhere else.
   */
  async start(c: Context, cookiePath: string): Promise<Session> {
    const session = { id: randomBytes(18).toString('base64url'), expiresAt: this.options.clock() + this.lifetimeMs };
    await setSignedCookie(c, SESSION_COOKIE, `${session.id}.${session.expiresAt}`, this.cookieKey, {
      ...this.cookieOptions(c, cookiePath),
      maxAge: Math.floor(this.lifetimeMs / 1000),
    });
    deleteCookie(c, LOGIN_COOKIE, this.cookieOptions(c, cookiePath));
    return session;
  }

  /** The request's session, or undefined when the cookie is missing, tampered with, expired or logged out. */
  async read(c: Context): Promise<Session | undefined> {
    const value = await getSignedCookie(c, this.cookieKey, SESSION_COOKIE);
    if (!value) return undefined;
    const match = /^([A-Za-z0-9_-]{24})\.(\d{1,16})$/.exec(value);
    if (!match?.[1] || !match[2]) return undefined;
    const session = { id: match[1], expiresAt: Number(match[2]) };
    if (session.expiresAt <= this.options.clock() || this.revoked.has(session.id)) return undefined;
    return session;
  }

  /** Ends a session: the cookie is cleared and the id refused from now on, even if a copy is replayed. */
  end(c: Context, session: Session | undefined, cookiePath: string): void {
    const now = this.options.clock();
    for (const [id, expiresAt] of this.revoked) if (expiresAt <= now) this.revoked.delete(id);
    if (session) this.revoked.set(session.id, session.expiresAt);
    deleteCookie(c, SESSION_COOKIE, this.cookieOptions(c, cookiePath));
  }

  /** The CSRF token of a session: an HMAC of its id, so it needs no storage and dies with the session. */
  csrfFor(session: Session): string {
    return sign(this.csrfKey, `session:${session.id}`);
  }

  /** True when `token` is the session's CSRF token. */
  checkCsrf(session: Session, token: string | undefined): boolean {
    return token !== undefined && verifySignature(this.csrfKey, `session:${session.id}`, token);
  }

  /** Gives the login form a CSRF token, bound to a fresh short-lived cookie of this browser. */
  async loginFormToken(c: Context, cookiePath: string): Promise<string> {
    const nonce = randomBytes(18).toString('base64url');
    const expiresAt = this.options.clock() + LOGIN_FORM_LIFETIME_MS;
    await setSignedCookie(c, LOGIN_COOKIE, `${nonce}.${expiresAt}`, this.cookieKey, {
      ...this.cookieOptions(c, cookiePath),
      maxAge: Math.floor(LOGIN_FORM_LIFETIME_MS / 1000),
    });
    return sign(this.csrfKey, `login:${nonce}.${expiresAt}`);
  }

  /** True when `token` came with the login form this browser was given, and that form has not expired. */
  async checkLoginForm(c: Context, token: string | undefined): Promise<boolean> {
    const value = await getSignedCookie(c, this.cookieKey, LOGIN_COOKIE);
    if (!value || token === undefined) return false;
    const match = /^[A-Za-z0-9_-]{24}\.(\d{1,16})$/.exec(value);
    if (!match?.[1] || Number(match[1]) <= this.options.clock()) return false;
    return verifySignature(this.csrfKey, `login:${value}`, token);
  }

  private cookieOptions(c: Context, path: string): { path: string; httpOnly: true; sameSite: 'Strict'; secure: boolean } {
    return { path, httpOnly: true, sameSite: 'Strict', secure: isHttps(c, this.options.trustProxy) };
  }
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
    const session = await sessions.read(c);
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
