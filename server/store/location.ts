import { parsePostgresUrl } from '../core/postgres-url.ts';

/** True when `location` names a PostgreSQL database rather than a SQLite file. */
export function isPostgresUrl(location: string): boolean {
  return /^postgres(ql)?:\/\//i.test(location);
}

/**
 * Where a PostgreSQL URL points, for messages: host (a Unix socket's folder), port and database, never the user
 * or the password.
 */
export function describePostgresUrl(url: string): string {
  const parsed = parsePostgresUrl(url);
  if (!parsed) return 'the PostgreSQL URL';
  const { url: u, socket } = parsed;
  return `${socket || u.hostname || 'localhost'}:${u.port || '5432'}${u.pathname || '/'}`;
}

/** A store's location for messages: a SQLite path as it is, a PostgreSQL URL without its user and password. */
export function describeLocation(location: string): string {
  return isPostgresUrl(location) ? `PostgreSQL at ${describePostgresUrl(location)}` : location;
}

/**
 * True when a second connection to `location` would see another database: SQLite's `:memory:` (and `''`, a
 * temporary file) belongs to the connection that opened it.
 */
export function isPrivateToConnection(location: string): boolean {
  return location === ':memory:' || location === '';
}
