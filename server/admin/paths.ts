import type { MiddlewareHandler } from 'hono';
import { basePath } from 'hono/route';

/** A per-token page or form action. */
export type TokenAction = 'change' | 'delete' | 'validate' | 'retry' | 'sent';

/**
 * Every admin URL of one request, built from where the admin was reached: `/admin` when the collector
 * serves the app at the root, `<prefix>/admin` when a host mounts it under a prefix.
 */
export interface AdminPaths {
  /** Where the admin lives, e.g. `/admin` or `/analytics/admin`; also the cookies' path. */
  base: string;
  /** The token list, the admin's home page. */
  tokens: string;
  /** The form that adds a token. */
  addToken: string;
  /** The failed deliveries page. */
  failed: string;
  /** What leaves the install at all, with live examples and the ways to opt out. */
  about: string;
  /** The login page. */
  login: string;
  /** The logout page (POST logs out). */
  logout: string;
  /** Where the "send daily stats now" button posts. */
  statsRun: string;
  /** A token's page or form action. */
  token: (id: number, action: TokenAction) => string;
}

/** The admin's URLs under `base` (no trailing slash). */
export function adminPaths(base: string): AdminPaths {
  const tokens = `${base}/analytics/analyticstokens/`;
  return {
    base,
    tokens,
    addToken: `${tokens}add/`,
    failed: `${base}/analytics/failed/`,
    about: `${base}/analytics/about/`,
    login: `${base}/login`,
    logout: `${base}/logout`,
    statsRun: `${base}/analytics/stats/run/`,
    token: (id, action) => `${tokens}${id}/${action}/`,
  };
}

/** What the admin's handlers can read from the context about where the admin was reached. */
export interface AdminPathVariables {
  paths: AdminPaths;
  /** The request's path below the admin base (`/login`, `/analytics/failed/`, or `''` for the base itself). */
  pathInAdmin: string;
}

/** Characters kept as they are in a base's segments; any other is percent-encoded. */
const SEGMENT_KEEP = /%(?![0-9A-Fa-f]{2})|[^A-Za-z0-9._~!$&'()*+,=:@%-]/gu;

/**
 * The admin base as it goes into links, redirects and cookie paths, from the matched base path
 * (percent-decoded, as the router saw it). Undefined for anything that is not plain non-empty segments:
 * a mount prefix with parameters takes them from the request, so `\`, `;`, empty or dot segments there
 * must never reach a `Location` or a cookie path.
 */
export function publicBase(matched: string): string | undefined {
  if (!matched.startsWith('/')) return undefined;
  const segments = matched.slice(1).split('/');
  const out: string[] = [];
  for (const segment of segments) {
    if (segment === '' || segment === '.' || segment === '..') return undefined;
    out.push(segment.replace(SEGMENT_KEEP, (ch) => encodeURIComponent(ch)));
  }
  return `/${out.join('/')}`;
}

/**
 * Works out, per request, where the admin sub-app was reached (its own mount `/admin` plus whatever
 * prefix a host mounted the app under, parameters filled in from the request) and sets `paths` and
 * `pathInAdmin`. Anything it cannot turn into a safe base is answered with the app's usual 404.
 */
export function adminLocation(): MiddlewareHandler<{ Variables: AdminPathVariables }> {
  return async function adminBase(c, next) {
    const matched = basePath(c);
    const path = c.req.path;
    const inside = path === matched || path.startsWith(`${matched}/`);
    const base = inside ? publicBase(matched) : undefined;
    if (base === undefined) return c.json({ error: 'not found' }, 404);
    c.set('paths', adminPaths(base));
    c.set('pathInAdmin', path.slice(matched.length));
    await next();
  };
}

/** Where to go after logging in: a page under this admin base, never anywhere else (no open redirect). */
export function safeNext(next: string | undefined, paths: AdminPaths): string {
  const prefix = `${paths.base}/`;
  if (!next?.startsWith(prefix)) return paths.tokens;
  const rest = next.slice(prefix.length);
  if (!/^[A-Za-z0-9/_-]*$/.test(rest) || next.includes('//') || rest.startsWith('login')) return paths.tokens;
  return rest.startsWith('logout') ? paths.tokens : next;
}
