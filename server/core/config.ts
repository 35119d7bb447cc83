import { readFileSync } from 'node:fs';
import { parsePostgresUrl } from './postgres-url.ts';
import { packagePath } from './package-root.ts';

/** The collector's settings, parsed once from the environment at start-up. */
export interface Config {
  port: number;
  host: string;
  /** The store: a SQLite file path (or `:memory:`), or a `postgres://` / `postgresql://` URL. */
  dbPath: string;
  /** Whether this process delivers to GA (and runs the daily schedule); off: it only collects. */
  relay: boolean;
  /** How long rows a relay claimed stay its own before another relay may take them over (a crashed or stuck process). */
  leaseSeconds: number;
  /** Waiting events kept at most; past it page views are dropped first. */
  outboxMax: number;
  /** Open connections accepted at once. */
  maxConnections: number;
  /** Open connections accepted at once from one client address (IPv6: one /64); not applied behind a proxy. */
  maxConnectionsPerAddress: number;
  /** Full opt-out: nothing is queued or sent. */
  disabled: boolean;
  /** Base URL of GA's `/mp/collect` and `/debug/mp/collect`, without a trailing slash. */
  gaUrl: string;
  appVersion: string;
  /** Origin put in front of a page path to form GA's `page_location`. */
  pageOrigin: string;
  /** Secret for the admin pages and API; `undefined` turns the admin off. */
  adminToken: string | undefined;
  /** Bearer secret for `POST /api/events` and `PUT /api/stats`; `undefined` turns them off. */
  eventsKey: string | undefined;
  /** Bearer secret for `GET /metrics`; `undefined` turns it off (404). */
  metricsToken: string | undefined;
  /** Take the client address from `X-Forwarded-For`. */
  trustProxy: boolean;
  /** Page-view hits accepted per client address per minute at `POST /collect`. */
  rateLimitPerMinute: number;
}

/** A setting that cannot be used; the message names the variable. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** A lease must outlast a GA request (10 s) and a stop's grace: shorter ones would let two relays send the same rows. */
export const MIN_LEASE_SECONDS = 15;

/** The smallest secret accepted (admin token, events key, metrics token): shorter ones are guessable. */
export const MIN_SECRET_LENGTH = 16;

/** The secrets of the config, by the variable that sets each; no two may be the same. */
const SECRETS = [
  ['adminToken', 'ANALYTICS_ADMIN_TOKEN'],
  ['eventsKey', 'ANALYTICS_EVENTS_KEY'],
  ['metricsToken', 'ANALYTICS_METRICS_TOKEN'],
] as const;

type Env = Record<string, string | undefined>;

/** The version in this package's package.json. */
export function packageVersion(): string {
  const raw = readFileSync(packagePath('package.json'), 'utf8');
  return (JSON.parse(raw) as { version: string }).version;
}

function read(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === '' ? undefined : value;
}

function parseBoolean(env: Env, name: string): boolean {
  const value = read(env, name);
  if (value === undefined) return false;
  const lower = value.toLowerCase();
  if (lower === 'true' || lower === '1') return true;
  if (lower === 'false' || lower === '0') return false;
  throw new ConfigError(`${name} must be true, 1, false or 0 (got "${value}")`);
}

function parseOnOff(env: Env, name: string, fallback: boolean): boolean {
  const value = read(env, name);
  if (value === undefined) return fallback;
  const lower = value.toLowerCase();
  if (['on', 'true', '1'].includes(lower)) return true;
  if (['off', 'false', '0'].includes(lower)) return false;
  throw new ConfigError(`${name} must be on or off (got "${value}")`);
}

function parsePort(env: Env, name: string, fallback: number): number {
  const value = read(env, name);
  if (value === undefined) return fallback;
  const port = Number(value);
  if (!/^\d+$/.test(value) || port > 65535) {
    throw new ConfigError(`${name} must be a port number from 0 to 65535 (got "${value}")`);
  }
  return port;
}

function parseCount(env: Env, name: string, fallback: number, min = 1): number {
  const value = read(env, name);
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) < min) {
    throw new ConfigError(`${name} must be a whole number of ${min} or more (got "${value}")`);
  }
  return Number(value);
}

/** `value` as a URL when it is http(s) with no user, password, query or fragment; otherwise undefined. */
function plainHttpUrl(value: string): URL | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return undefined;
  }
  // A user name or password would end up in logs; a query or fragment would break the paths added to it.
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  if (url.username || url.password || url.search || url.hash || /[?#]/.test(value)) return undefined;
  return url;
}

const URL_RULE = 'must be an http(s) URL without user, password, query or fragment';

function parseHttpUrl(env: Env, name: string, fallback: string, originOnly: boolean): string {
  const value = read(env, name) ?? fallback;
  const url = plainHttpUrl(value);
  if (!url) {
    // Echo the value only when it cannot hold a password.
    throw new ConfigError(`${name} ${URL_RULE}${value.includes('@') ? '' : ` (got "${value}")`}`);
  }
  if (originOnly) return url.origin;
  return url.href.replace(/\/+$/, '');
}

/** Why `location` cannot be a database location, or undefined: a URL of any kind but PostgreSQL's is refused. */
function databaseProblem(location: string): string | undefined {
  // Anything holding `scheme://` would otherwise be taken as a SQLite file name (a folder named after the scheme, a
  // file named after the rest) and printed at start-up, password included. The value is not echoed for that reason.
  if (/[A-Za-z0-9]:\/\//.test(location) && !/^postgres(ql)?:\/\//i.test(location)) {
    return 'must be a SQLite file path or a postgres:// (postgresql://) URL; it is a URL of another kind (not shown: it may hold a password)';
  }
  if (/^postgres(ql)?:\/\//i.test(location) && !parsePostgresUrl(location)) {
    // Mostly a password with an unescaped `/`, `#`, `?` or `@`: the connection would fail later with a bare
    // "Invalid URL", or reach the wrong host. Not echoed: it holds the password.
    return 'is not a valid PostgreSQL URL (percent-encode / # ? @ in the password)';
  }
  return undefined;
}

function parseDatabase(env: Env, name: string, fallback: string): string {
  const value = read(env, name) ?? fallback;
  const problem = databaseProblem(value);
  if (problem) throw new ConfigError(`${name} ${problem}`);
  return value;
}

function parseSecret(env: Env, name: string, minLength: number): string | undefined {
  const value = read(env, name);
  if (value === undefined) return undefined;
  if (value.length < minLength) {
    // The value itself is never echoed: it is a secret.
    throw new ConfigError(`${name} must be at least ${minLength} characters long`);
  }
  return value;
}

/**
 * Parses the environment (the process's unless given) into a {@link Config}; throws a {@link ConfigError}
 * naming the bad variable. This file is the only reader of `process.env`.
 * @example loadConfig({ PORT: '8080' }).port // 8080
 */
export function loadConfig(env: Env = process.env, version: string = packageVersion()): Config {
  const config: Config = {
    port: parsePort(env, 'PORT', 3000),
    host: read(env, 'HOST') ?? '127.0.0.1',
    dbPath: parseDatabase(env, 'ANALYTICS_DB', './data/analytics.db'),
    relay: parseOnOff(env, 'ANALYTICS_RELAY', true),
    leaseSeconds: parseCount(env, 'ANALYTICS_RELAY_LEASE_SECONDS', 30, MIN_LEASE_SECONDS),
    outboxMax: parseCount(env, 'ANALYTICS_OUTBOX_MAX', 100_000),
    maxConnections: parseCount(env, 'ANALYTICS_MAX_CONNECTIONS', 10_000),
    maxConnectionsPerAddress: parseCount(env, 'ANALYTICS_MAX_CONNECTIONS_PER_ADDRESS', 256),
    disabled: parseBoolean(env, 'ANALYTICS_DISABLED'),
    gaUrl: parseHttpUrl(env, 'ANALYTICS_GA_URL', 'https://www.google-analytics.com', false),
    appVersion: read(env, 'ANALYTICS_APP_VERSION') ?? version,
    pageOrigin: parseHttpUrl(env, 'ANALYTICS_PAGE_ORIGIN', 'https://app.invalid', true),
    adminToken: parseSecret(env, 'ANALYTICS_ADMIN_TOKEN', MIN_SECRET_LENGTH),
    eventsKey: parseSecret(env, 'ANALYTICS_EVENTS_KEY', MIN_SECRET_LENGTH),
    metricsToken: parseSecret(env, 'ANALYTICS_METRICS_TOKEN', MIN_SECRET_LENGTH),
    trustProxy: parseBoolean(env, 'ANALYTICS_TRUST_PROXY'),
    rateLimitPerMinute: parseCount(env, 'ANALYTICS_RATE_LIMIT', 1200),
  };
  distinctSecrets(config, (_field, variable) => variable);
  return config;
}

/**
 * Refuses a config where two secrets are the same: each credential opens one door only, so an events key
 * that is also the admin token would open the admin.
 */
function distinctSecrets(config: Config, nameOf: (field: string, variable: string) => string): void {
  for (const [i, [field, variable]] of SECRETS.entries()) {
    for (const [otherField, otherVariable] of SECRETS.slice(i + 1)) {
      const secret = config[field];
      if (secret !== undefined && secret === config[otherField]) {
        throw new ConfigError(`${nameOf(field, variable)} and ${nameOf(otherField, otherVariable)} must be different secrets`);
      }
    }
  }
}

/**
 * Checks a config built in code (library use) as start-up checks the environment, and returns it with its
 * URLs in the same form (GA base without a trailing slash, page origin only); throws a {@link ConfigError}
 * naming the field.
 */
function checkConfig(config: Config): Config {
  const fail = (field: keyof Config, message: string) => {
    throw new ConfigError(`${field} ${message}`);
  };
  if (!Number.isInteger(config.port) || config.port < 0 || config.port > 65535) fail('port', 'must be a port number from 0 to 65535');
  const databaseIssue = databaseProblem(config.dbPath);
  if (databaseIssue) fail('dbPath', databaseIssue);
  for (const field of ['gaUrl', 'pageOrigin'] as const) {
    if (!plainHttpUrl(config[field])) fail(field, URL_RULE);
  }
  for (const [field] of SECRETS) {
    const secret = config[field];
    if (secret !== undefined && secret.length < MIN_SECRET_LENGTH) fail(field, `must be at least ${MIN_SECRET_LENGTH} characters long`);
  }
  distinctSecrets(config, (field) => field);
  for (const field of ['rateLimitPerMinute', 'outboxMax', 'maxConnections', 'maxConnectionsPerAddress'] as const) {
    if (!Number.isInteger(config[field]) || config[field] < 1) fail(field, 'must be a whole number of 1 or more');
  }
  if (!Number.isInteger(config.leaseSeconds) || config.leaseSeconds < MIN_LEASE_SECONDS) fail('leaseSeconds', `must be a whole number of ${MIN_LEASE_SECONDS} or more`);
  return {
    ...config,
    gaUrl: (plainHttpUrl(config.gaUrl) as URL).href.replace(/\/+$/, ''),
    pageOrigin: (plainHttpUrl(config.pageOrigin) as URL).origin,
  };
}

/**
 * The config of library use: `env` (the process's unless given) with `overrides` on top, checked like the
 * environment. An opt-out wins wherever it is said: code cannot turn back on what the site owner turned off
 * in the process's environment, not even by handing in an environment of its own.
 */
export function resolveConfig(overrides: Partial<Config> = {}, env: Env = process.env): Config {
  const fromEnv = loadConfig(env);
  return checkConfig({
    ...fromEnv,
    ...overrides,
    disabled: fromEnv.disabled || parseBoolean(process.env, 'ANALYTICS_DISABLED') || overrides.disabled === true,
  });
}
