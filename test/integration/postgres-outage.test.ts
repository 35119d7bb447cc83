import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { runCollectorToExit, startCollector } from '../../harness/collector-process.ts';
import { embeddedPostgres, freePort } from '../../harness/postgres-server.ts';
import type { FakeGa } from '../../harness/fake-ga.ts';
import { TEAM_TOKEN } from '../../server/tokens/team-token.ts';
import { openTestStore } from '../helpers/app.ts';
import { fakeGaPerTest } from '../helpers/fake-ga-per-test.ts';

const CHROME = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36';

let ga: FakeGa;
const stopAfterTest = fakeGaPerTest((started) => (ga = started));

const dataDir = join(tmpdir(), `analytics-pg-outage-${process.pid}-${Date.now()}`);
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

describe('PostgreSQL that is not there', () => {
  it('at start-up: one clear line naming where, no password, and exit 1', async () => {
    const port = await freePort();
    const { code, output } = await runCollectorToExit({ ANALYTICS_DB: `postgres://analytics:hunter2-secret@127.0.0.1:${port}/analytics` });
    expect(code).toBe(1);
    expect(output).toMatch(new RegExp(`cannot use the PostgreSQL database at 127\\.0\\.0\\.1:${port}/analytics: .*ECONNREFUSED`));
    expect(output).not.toContain('hunter2-secret');
    expect(output.trim().split('\n')).toHaveLength(1);
  });

  it('while running: /collect and /healthz answer 503 with Retry-After, and both recover by themselves, losing nothing', async () => {
    const port = await freePort();
    // A server of this test's own, which it stops and starts again (persistent: its data stays).
    const server = await embeddedPostgres({ dir: dataDir, port, password: 'pw', persistent: true });
    await server.initialise();
    await server.start();
    stopAfterTest({ stop: () => server.stop() });
    await server.createDatabase('analytics');
    const url = `postgres://postgres:pw@127.0.0.1:${port}/analytics`;
    const { store } = await openTestStore({ postgresUrl: url });
    await store.install(TEAM_TOKEN, Date.now());
    await store.createToken({ name: 'T', measurementId: 'G-OUTAGE1', apiSecret: 's', sendDailyStats: true, sendTaskEvents: true, sendPageViews: true, ignorePaths: [] }, Date.now());
    await store.close();

    const collector = await startCollector({ ANALYTICS_DB: url, ANALYTICS_GA_URL: ga.url });
    stopAfterTest({ stop: () => collector.stop('SIGKILL') });
    const hit = (path: string) =>
      fetch(`${collector.url}/collect`, { method: 'POST', body: JSON.stringify({ path, title: 't', language: 'en' }), headers: { 'User-Agent': CHROME } });

    expect((await hit('/before')).status).toBe(204);
    await server.stop();
    const started = Date.now();
    const during = await hit('/during');
    expect(during.status).toBe(503);
    expect(Number(during.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await during.text()).toMatch(/database is unavailable/);
    const health = await fetch(`${collector.url}/healthz`);
    expect(health.status).toBe(503);
    expect(health.headers.get('retry-after')).not.toBeNull();
    expect(Date.now() - started).toBeLessThan(10_000); // refused, not hung

    await server.start();
    let after = 0;
    for (let tries = 0; tries < 50 && after !== 204; tries += 1) {
      after = (await hit('/after')).status;
      if (after !== 204) await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(after).toBe(204);
    expect((await fetch(`${collector.url}/healthz`)).status).toBe(200);
    await ga.waitFor(() => ga.delivered().length >= 2, 30_000);
    const delivered = ga.delivered().map((e) => new URL(String(e.params.page_location)).pathname).sort();
    expect(delivered).toEqual(['/after', '/before']);
  }, 90_000);
});
