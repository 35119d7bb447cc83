import { randomBytes } from 'node:crypto';
import pg from 'pg';

/**
 * A new, empty database on the test PostgreSQL server (started by the global set-up), for one test's store:
 * tests never see each other's rows. Returns its URL.
 */
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
