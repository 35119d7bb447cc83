import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, inject } from 'vitest';
import { runCollectorToExit, startCollector as start, type CollectorProcess } from '../../harness/collector-process.ts';
import { freshPostgresUrl } from '../../harness/postgres-server.ts';
import { TEAM_TOKEN } from '../../server/tokens/team-token.ts';
import { openTestStore } from '../helpers/app.ts';

const dir = mkdtempSync(join(tmpdir(), 'analytics-start-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Every collector a test starts is stopped after it, even when an assertion failed first.
const started: CollectorProcess[] = [];
async function startCollector(env: Record<string, string>): Promise<CollectorProcess> {
  const collector = await start(env);
  started.push(collector);
  return collector;
}
afterEach(async () => {
  await Promise.all(started.splice(0).map((collector) => collector.stop('SIGKILL')));
});

describe('the collector process', () => {
  it('starts, says where it listens and what is on, serves /healthz, and closes the database on SIGTERM', async () => {
    const db = join(dir, 'data', 'analytics.db');
    const collector = await startCollector({ ANALYTICS_DB: db });
    expect(collector.output()).toMatch(/listening on http:\/\/127\.0\.0\.1:\d+/);
    expect(collector.output()).toContain('admin off');
    expect(collector.output()).toContain('events API off');
    expect(collector.output()).toContain('metrics off (ANALYTICS_METRICS_TOKEN is unset)');
    expect((await fetch(`${collector.url}/healthz`)).status).toBe(200);
    expect(existsSync(db)).toBe(true);

    expect(await collector.stop('SIGTERM')).toBe(0);
    expect(collector.output()).toContain('database closed');
    // A cleanly closed WAL database leaves no write-ahead log behind.
    expect(existsSync(`${db}-wal`)).toBe(false);
  });

  it('hints once at start how to add a token while none can receive events', async () => {
    const collector = await startCollector({ ANALYTICS_DB: join(dir, 'fresh.db') });
    const hints = collector.output().split('\n').filter((line) => line.includes('no token can receive events yet'));
    expect(hints).toHaveLength(1);
    expect(hints[0]).toContain(
      'no token can receive events yet: add a GA4 measurement id and API secret at /admin/ or with POST /api/admin/tokens once ANALYTICS_ADMIN_TOKEN is set (README: Quick start)',
    );
    expect((await fetch(`${collector.url}/healthz`)).status).toBe(200);
    expect(await collector.stop('SIGTERM')).toBe(0);
    expect(collector.output().match(/no token can receive events yet/g)).toHaveLength(1);
  });

  it('leaves out "set ANALYTICS_ADMIN_TOKEN" from the hint when the admin is on', async () => {
    const collector = await startCollector({ ANALYTICS_DB: ':memory:', ANALYTICS_ADMIN_TOKEN: 'admin-token-0123456789' });
    expect(collector.output()).toContain(
      'no token can receive events yet: add a GA4 measurement id and API secret at /admin/ or with POST /api/admin/tokens (README: Quick start)',
    );
  });

  it('gives no token hint when a token can receive events', async () => {
    const db = join(dir, 'with-token.db');
    const { store } = await openTestStore({ sqliteFile: db });
    await store.install(TEAM_TOKEN, Date.now());
    await store.createToken(
      { name: 'Real', measurementId: 'G-REAL1234', apiSecret: 'a-real-api-secret', sendDailyStats: true, sendTaskEvents: true, sendPageViews: true, ignorePaths: [] },
      Date.now(),
    );
    await store.close();
    const collector = await startCollector({ ANALYTICS_DB: db });
    expect(collector.output()).toContain('relaying to');
    expect(collector.output()).not.toContain('no token can receive');
  });

  it('gives no token hint, only that nothing is sent, when ANALYTICS_DISABLED is on', async () => {
    const collector = await startCollector({ ANALYTICS_DB: ':memory:', ANALYTICS_DISABLED: 'true' });
    expect(collector.output()).toContain('ANALYTICS_DISABLED is on: nothing is queued or sent');
    expect(collector.output()).not.toContain('no token can receive');
  });

  it('keeps the same install UUID across restarts of the same file', async () => {
    const db = join(dir, 'restart.db');
    const first = await startCollector({ ANALYTICS_DB: db });
    const uuid = /install ([0-9a-f-]{36})/.exec(first.output())?.[1];
    await first.stop();
    const second = await startCollector({ ANALYTICS_DB: db });
    expect(uuid).toBeDefined();
    expect(second.output()).toContain(`install ${uuid}`);
    await second.stop();
  });

  it.each([
    [{ PORT: 'abc' }, /PORT must be a port number/],
    [{ ANALYTICS_DISABLED: 'maybe' }, /ANALYTICS_DISABLED must be true, 1, false or 0/],
    [{ ANALYTICS_GA_URL: 'gopher://x' }, /ANALYTICS_GA_URL must be an http\(s\) URL/],
    [{ ANALYTICS_ADMIN_TOKEN: 'too-short' }, /ANALYTICS_ADMIN_TOKEN must be at least 16 characters/],
    [{ ANALYTICS_EVENTS_KEY: 'short-events' }, /ANALYTICS_EVENTS_KEY must be at least 16 characters/],
    [{ ANALYTICS_RELAY: 'maybe' }, /ANALYTICS_RELAY must be on or off/],
  ])('refuses to start with %o', async (env, message) => {
    const { code, output } = await runCollectorToExit({ ANALYTICS_DB: ':memory:', ...env });
    expect(code).toBe(1);
    expect(output).toMatch(message);
    expect(output).not.toMatch(/\n\s+at /); // a sentence, not a stack trace
  });

  it('refuses a corrupt database file without overwriting it', async () => {
    const db = join(dir, 'corrupt.db');
    writeFileSync(db, 'precious, not SQLite');
    const { code, output } = await runCollectorToExit({ ANALYTICS_DB: db });
    expect(code).toBe(1);
    expect(output).toContain('file is not a database');
    expect(readFileSync(db, 'utf8')).toBe('precious, not SQLite');
  });

  it('refuses a database folder that cannot be created', async () => {
    const file = join(dir, 'plain-file');
    writeFileSync(file, '');
    const { code, output } = await runCollectorToExit({ ANALYTICS_DB: join(file, 'db', 'a.db') });
    expect(code).toBe(1);
    expect(output).toContain('cannot create the database folder');
  });

  it('runs on a PostgreSQL URL, naming the database without its password, and stops cleanly', async () => {
    const url = await freshPostgresUrl(inject('pgUrl'));
    const password = decodeURIComponent(new URL(url).password);
    const first = await startCollector({ ANALYTICS_DB: url });
    const where = new URL(url);
    expect(first.output()).toContain(`database PostgreSQL at ${where.hostname}:${where.port}${where.pathname}`);
    expect((await fetch(`${first.url}/healthz`)).status).toBe(200);
    const uuid = /install ([0-9a-f-]{36})/.exec(first.output())?.[1];
    expect(await first.stop('SIGTERM')).toBe(0);
    // The identity lives in the database: a restart keeps it.
    const second = await startCollector({ ANALYTICS_DB: url });
    expect(uuid).toBeDefined();
    expect(second.output()).toContain(`install ${uuid}`);
    expect(await second.stop('SIGTERM')).toBe(0);
    if (password !== '') expect(first.output() + second.output()).not.toContain(password);
  });

  it('refuses a PostgreSQL server it cannot reach, without echoing the password', async () => {
    const { code, output } = await runCollectorToExit({ ANALYTICS_DB: 'postgres://analytics:hunter2-secret@127.0.0.1:1/analytics' });
    expect(code).toBe(1);
    expect(output).toContain('cannot use the PostgreSQL database at 127.0.0.1:1/analytics');
    expect(output).not.toContain('hunter2');
    expect(output).not.toMatch(/\n\s+at /);
  });

  it('refuses a PostgreSQL URL that does not parse in one line, without a stack trace or the password', async () => {
    // An unescaped `/` in the password.
    const { code, output } = await runCollectorToExit({ ANALYTICS_DB: 'postgres://analytics:ab/cd+ef@127.0.0.1:5432/analytics' });
    expect(code).toBe(1);
    expect(output).toContain('ANALYTICS_DB is not a valid PostgreSQL URL (percent-encode / # ? @ in the password)');
    expect(output.trim().split('\n')).toHaveLength(1);
    expect(output).not.toMatch(/\n\s+at |TypeError/);
    expect(output).not.toContain('cd+ef');
  });

  it('refuses a port that is already taken', async () => {
    const first = await startCollector({ ANALYTICS_DB: ':memory:' });
    const port = new URL(first.url).port;
    const { code, output } = await runCollectorToExit({ ANALYTICS_DB: ':memory:', PORT: port });
    await first.stop();
    expect(code).toBe(1);
    expect(output).toContain(`127.0.0.1:${port} is already in use`);
  });
});
