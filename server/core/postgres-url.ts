// A PostgreSQL URL as pg reads it: the configuration checks it, messages describe it.

/** Stands for the missing host of a Unix-socket URL while it is parsed. */
const SOCKET_HOST = '___socket___';

/**
 * A PostgreSQL URL parsed as pg reads it (pg-connection-string's `parse()`, which pg does not export): spaces and
 * stray `%` encoded first; no host after the `@` names a Unix socket in the query
 * (`postgres://user:pw@/db?host=/var/run/postgresql`). Undefined when it does not parse, or holds a literal `#`
 * (it starts a fragment, cutting a password short).
 */
export function parsePostgresUrl(url: string): { url: URL; socket: string | undefined } | undefined {
  if (url.includes('#')) return undefined;
  let encoded: string;
  try {
    encoded = / |%[^a-f0-9]|%[a-f0-9][^a-f0-9]/i.test(url) ? encodeURI(url).replace(/%25(\d\d)/g, '%$1') : url;
  } catch {
    return undefined; // a lone surrogate, which pg refuses too
  }
  const parsed = URL.parse(encoded) ?? URL.parse(encoded.replace('@/', `@${SOCKET_HOST}/`));
  if (!parsed) return undefined;
  const socket = parsed.hostname === SOCKET_HOST ? (parsed.searchParams.get('host') ?? '') : undefined;
  return { url: parsed, socket };
}
