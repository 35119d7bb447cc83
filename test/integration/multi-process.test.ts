import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { startCollector, type CollectorProcess } from '../../harness/collector-process.ts';
import type { FakeGa } from '../../harness/fake-ga.ts';
import { TEAM_TOKEN } from '../../server/tokens/team-token.ts';
import { openTestStore } from '../helpers/app.ts';
import { fakeGaPerTest } from '../helpers/fake-ga-per-test.ts';
import { freshPostgresUrl } from '../../harness/postgres-server.ts';

const CHROME = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36';
const TOKENS = ['G-MULTI1', 'G-MULTI2'];
const dir = mkdtempSync(join(tmpdir(), 'analytics-multi-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let ga: FakeGa;
const stopAfterTest = fakeGaPerTest((started) => (ga = started));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Makes the install and the two tokens every process will share. */
async function prepare(location: { sqliteFile: string } | { postgresUrl: string }): Promise<void> {
  const { store } = await openTestStore(location);
  await store.install(TEAM_TOKEN, Date.now());
  for (const measurementId of TOKENS) {
    await store.createToken({ name: measurementId, measurementId, apiSecret: 'secret', sendDailyStats: true, sendTaskEvents: true, sendPageViews: true, ignorePaths: [] }, Date.now());
  }
  await store.close();
}

/** Posts hit `n` to `collector`; true when it was answered 204 (and so must arrive). */
async function hit(collector: CollectorProcess, n: number): Promise<boolean> {
  try {
    const res = await fetch(`${collector.url}/collect`, {
      method: 'POST',
      body: JSON.stringify({ path: `/multi/${n}`, title: 't', language: 'en' }),
      headers: { 'Content-Type': 'text/plain', 'User-Agent': CHROME },
    });
    return res.status === 204;
  } catch {
    return false; // the process was killed under it: not answered, so not promised
  }
}

/**
 * The scenario both stores must pass: hits spread over the collectors while GA is down, one collector killed
 * with SIGKILL mid-run and started again, then GA back up. Every hit answered 204 reaches each token exactly
 * once, under one client_id.
 */
async function runScenario(env: Record<string, string>, roles: Array<'collect-and-relay' | 'collect-only' | 'relay-only'>): Promise<void> {
  ga.setMode({ kind: 'status', status: 503 });
  const start = (role: (typeof roles)[number]) =>
    startCollector({ ...env, ANALYTICS_RELAY: role === 'collect-only' ? 'off' : 'on' }, { relayOnly: role === 'relay-only' });
  const processes = await Promise.all(roles.map(start));
  for (const p of processes) stopAfterTest({ stop: () => p.stop('SIGKILL') });
  const collectors = () => processes.filter((_, i) => roles[i] !== 'relay-only');
  const answered = new Set<number>();
  let n = 0;
  const send = async (count: number) => {
    const batch = Array.from({ length: count }, () => n++);
    const results = await Promise.all(batch.map((i) => hit(collectors()[i % collectors().length] as CollectorProcess, i)));
    batch.forEach((i, k) => results[k] && answered.add(i));
  };
  await send(120);
  // The first collector dies mid-run, hits in flight; it comes back on a new port.
  const victim = processes[0] as CollectorProcess;
  const inFlight = send(40);
  await sleep(20);
  await victim.stop('SIGKILL');
  await inFlight;
  processes[0] = await start(roles[0] as (typeof roles)[number]);
  stopAfterTest({ stop: () => (processes[0] as CollectorProcess).stop('SIGKILL') });
  await send(120);
  expect(answered.size).toBeGreaterThanOrEqual(240);

  ga.setMode({ kind: 'ok' });
  const wanted = answered.size * TOKENS.length;
  const pageViews = () => ga.delivered().filter((e) => e.name === 'page_view');
  await ga.waitFor(() => pageViews().length >= wanted, 60_000);
  await sleep(2_000); // a duplicate would arrive now

  const seen = new Map<string, number>();
  for (const event of pageViews()) {
    const key = `${event.measurementId} ${new URL(String(event.params.page_location)).pathname}`;
    seen.set(key, (seen.get(key) ?? 0) + 1);
  }
  const missing: string[] = [];
  for (const i of answered) for (const token of TOKENS) if (!seen.has(`${token} /multi/${i}`)) missing.push(`${token} /multi/${i}`);
  const twice = [...seen].filter(([, count]) => count > 1).map(([key]) => key);
  expect(missing).toEqual([]);
  expect(twice).toEqual([]);
  expect(new Set(ga.delivered().map((e) => e.clientId)).size).toBe(1);
}

describe('several processes on one store', () => {
  it('PostgreSQL: two collectors (one only collecting) and a relay-only process; a SIGKILL loses nothing, sends nothing twice', async () => {
    const url = await freshPostgresUrl(inject('pgUrl'));
    await prepare({ postgresUrl: url });
    await runScenario({ ANALYTICS_DB: url, ANALYTICS_GA_URL: ga.url, ANALYTICS_RELAY_LEASE_SECONDS: '15' }, ['collect-and-relay', 'collect-only', 'relay-only']);
  }, 120_000);

  it('SQLite: two collectors on one file, both delivering; a SIGKILL loses nothing, sends nothing twice', async () => {
    const file = join(dir, 'shared.db');
    await prepare({ sqliteFile: file });
    await runScenario({ ANALYTICS_DB: file, ANALYTICS_GA_URL: ga.url, ANALYTICS_RELAY_LEASE_SECONDS: '15' }, ['collect-and-relay', 'collect-and-relay']);
  }, 120_000);
});
