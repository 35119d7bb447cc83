/** True when `location` names a PostgreSQL database rather than a SQLite file. */
export function isPostgresUrl(location: string): boolean {
  return /^postgres(ql)?:\/\//i.test(location);
}

/**
 * Where a PostgreSQL URL points, for messages: host, port and database, never the user or the password. A Unix
 * socket (`postgres://user@/db?host=/var/run/postgresql`, as pg reads it) is named by its folder.
 */
export function describePostgresUrl(url: string): string {
  try {
    const parsed = new URL(url.replace('@/', '@___socket___/'));
    const socket = parsed.hostname === '___socket___' ? parsed.searchParams.get('host') : null;
    const host = socket ?? (parsed.hostname || 'localhost');
    return `${host}:${parsed.port || '5432'}${parsed.pathname || '/'}`;
  } catch {
    return 'the PostgreSQL URL';
  }
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
