import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, api } from '../helpers/admin.ts';
import { addTestToken, makeTestApp, makeTestServices, queueEvents, until } from '../helpers/app.ts';
import { fakeGaPerTest } from '../helpers/fake-ga-per-test.ts';
import type { FakeGa } from '../../harness/fake-ga.ts';
import type { RelayUnderGcReport } from '../helpers/relay-under-gc.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const UNDER_GC = fileURLToPath(new URL('../helpers/relay-under-gc.ts', import.meta.url));
const TIMEOUT_MS = 1_000;
// Timers, a round's database work and a loaded test machine: how late "in time" may still be.
const GRACE_MS = 1_000;

let ga: FakeGa;
const stopAfterTest = fakeGaPerTest((started) => (ga = started));

/** Runs test/helpers/relay-under-gc.ts in `node --expose-gc` and returns what it printed. */
function runRelayUnderGc(timeoutMs: number): Promise<RelayUnderGcReport> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', UNDER_GC, String(timeoutMs)], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('exit', (code) => {
      clearTimeout(killer);
      const line = out.trim().split('\n').at(-1) ?? '';
      if (code !== 0 || !line.startsWith('{')) reject(new Error(`relay-under-gc exited with ${code}:\n${out}`));
      else resolve(JSON.parse(line) as RelayUnderGcReport);
    });
  });
}

const TASK = { name: 'task_event', params: { namespace: 'ns', task: 't', label: 'x', value: 1 } };

describe('GA requests that never get an answer', () => {
  it('are abandoned within the timeout after a forced garbage collection, and everything arrives once GA answers', async () => {
    const report = await runRelayUnderGc(TIMEOUT_MS);
    expect(report.gcRuns).toBe(2);
    expect(report.abandonedAfterMs).toHaveLength(2);
    for (const ms of report.abandonedAfterMs) {
      expect(ms).not.toBeNull();
      expect(ms).toBeLessThanOrEqual(TIMEOUT_MS + GRACE_MS);
    }
    expect(report.lastError).toBe('GA did not answer in time');
    // Exactly once each: the hung requests never count, a late answer to them could not either.
    expect(report.deliveredByLabel).toEqual(Object.fromEntries(report.expectedLabels.map((label) => [label, 1])));
    expect(report.outboxDepthAtEnd).toBe(0);
  }, 60_000);

  it("the admin's validate answers with a timeout message instead of hanging", async () => {
    const { app } = await makeTestApp({ config: { adminToken: ADMIN_TOKEN, gaUrl: ga.url }, gaTimeoutMs: TIMEOUT_MS });
    const created = await api(app, 'POST', '/tokens', { name: 'P', measurementId: 'G-HANG000001', apiSecret: 'secret-value' });
    const { id } = (await created.json()) as { id: number };
    ga.setMode({ kind: 'black-hole' });
    const started = Date.now();
    const res = await api(app, 'POST', `/tokens/${id}/validate`);
    const elapsed = Date.now() - started;
    expect(res.status).toBe(200);
    const { results } = (await res.json()) as { results: Array<{ feature: string; validationMessages: unknown[]; error?: string }> };
    expect(results.map((r) => r.feature)).toEqual(['pageViews', 'taskEvents', 'dailyStats']);
    for (const result of results) expect(result).toMatchObject({ validationMessages: [], error: 'GA did not answer in time' });
    expect(elapsed).toBeGreaterThanOrEqual(TIMEOUT_MS - 50);
    expect(elapsed).toBeLessThanOrEqual(TIMEOUT_MS + GRACE_MS);
    expect(ga.requests.map((r) => [r.path, r.answer])).toEqual(Array.from({ length: 3 }, () => ['/debug/mp/collect', 'black-hole']));
  });

  it('are abandoned by a stop after its grace period, their events kept for the next start', async () => {
    const services = await makeTestServices({ config: { gaUrl: ga.url }, relay: { timeoutMs: 60_000, stopGraceMs: 300, lingerMs: 0 } });
    const tokenRow = await addTestToken(services);
    await queueEvents(services, [{ tokenId: tokenRow.id, ...TASK }]);
    ga.setMode({ kind: 'black-hole' });
    const { relay } = services;
    relay.start();
    await ga.waitFor(() => ga.requests.length === 1);
    const started = Date.now();
    await relay.stop();
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(Date.now() - started).toBeLessThan(300 + GRACE_MS);
    expect(await services.outbox.depth()).toBe(1);
    // Given back as it was: due at once, for this process after a restart or for another one now.
    const [row] = await services.sql<{ status: string; attempts: number; next_attempt_at: number }>('SELECT status, attempts, next_attempt_at FROM outbox');
    expect(row).toMatchObject({ status: 'pending', attempts: 0 });
    expect(Number(row?.next_attempt_at)).toBeLessThanOrEqual(Date.now());
    const [token] = await services.sql<{ claimed_by: string | null; lease_until: number }>('SELECT claimed_by, lease_until FROM tokens WHERE id = ?', [tokenRow.id]);
    expect(token).toMatchObject({ claimed_by: null });
    expect(Number(token?.lease_until)).toBe(0);
    await ga.waitFor(() => ga.requests[0]?.abandonedAt !== undefined, 2_000);
    await services.store.close();
  });

  it('a late answer to an abandoned request changes nothing: the events wait and go again, once', async () => {
    let answerAfterMs = 400;
    let calls = 0;
    const late: typeof fetch = () => {
      calls += 1;
      // Deaf to its signal: only the relay's own deadline can end the wait.
      return new Promise((resolve) => setTimeout(() => resolve(new Response(null, { status: 204 })), answerAfterMs));
    };
    const services = await makeTestServices({ config: { gaUrl: 'http://ga.invalid' }, fetch: late, relay: { timeoutMs: 100, random: () => 0 } });
    const token = await addTestToken(services);
    await queueEvents(services, [{ tokenId: token.id, ...TASK }]);
    const relay = stopAfterTest(services.relay);
    const rows = () => services.sql('SELECT id, status, attempts, last_error, next_attempt_at FROM outbox');
    const started = Date.now();
    await relay.drain();
    expect(Date.now() - started).toBeLessThan(100 + GRACE_MS);
    const [afterTimeout] = await rows();
    expect(afterTimeout).toMatchObject({ status: 'pending', attempts: 1, last_error: 'GA did not answer in time' });

    await new Promise((resolve) => setTimeout(resolve, answerAfterMs)); // the 204 to the abandoned request arrives
    expect(await rows()).toEqual([afterTimeout]);
    const outcomes = (await services.metrics.gaRequests.get()).values.map((v) => [v.labels.outcome, v.value]);
    expect(outcomes).toEqual([['retry', 1]]);

    answerAfterMs = 0;
    await new Promise((resolve) => setTimeout(resolve, 200)); // past the 0.5 s back-off, counted from the failure
    await relay.drain();
    expect(await services.outbox.depth()).toBe(0);
    expect(calls).toBe(2);
    await until(async () => (await services.outbox.depth()) === 0);
  });
});
