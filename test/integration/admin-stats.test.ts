import { describe, expect, it } from 'vitest';
import { addTestToken, makeTestApp, outboxEvents } from '../helpers/app.ts';
import { ADMIN_TOKEN, api, csrfOf, getPage, login, makeAdminApp, postForm } from '../helpers/admin.ts';

const LIST = '/admin/analytics/analyticstokens/';

/** An admin app whose daily stats take the host's numbers from `stats`, with one token that has daily stats on. */
async function withDailyStats(stats?: () => { users: number; tokens: number; apps: string[] }) {
  const made = await makeTestApp({ config: { adminToken: ADMIN_TOKEN }, dailyStats: { stats } });
  const token = await addTestToken(made.services);
  const queuedNames = async () =>
    (await outboxEvents(made.services)).map(
      (row) => `${row.name}:${String((JSON.parse(row.params) as Record<string, unknown>).label)}`,
    );
  return { ...made, token, queuedNames };
}

describe('running the daily stats from the admin', () => {
  it('POST /api/admin/stats/run queues one run now and stores when it ran', async () => {
    const { app, services, queuedNames } = await withDailyStats(() => ({ users: 12, tokens: 3, apps: ['forum'] }));
    const res = await api(app, 'POST', '/stats/run');
    expect(res.status).toBe(200);
    const run = (await res.json()) as { queued: number; withNumbers: boolean; at: number };
    expect(run).toMatchObject({ queued: 5, withNumbers: true });
    expect((await queuedNames()).sort()).toEqual(['daily_stats:apps', 'daily_stats:existence', 'daily_stats:tokens', 'daily_stats:users', 'installed_app:forum']);
    const [stored] = await services.sql<{ last_daily_stats_at: number }>('SELECT last_daily_stats_at FROM install');
    expect(Number(stored?.last_daily_stats_at)).toBe(run.at);
    expect((await api(app, 'POST', '/stats/run', undefined, null)).status).toBe(401);
  });

  it('the list page shows the schedule and its button sends the stats (with CSRF only)', async () => {
    const { app, queuedNames } = await withDailyStats();
    const browser = await login(app);
    const before = await (await getPage(app, LIST, browser.cookie)).text();
    expect(before).toContain('last sent never');
    expect(before).toContain('Send daily stats now');

    const refused = await postForm(app, '/admin/analytics/stats/run/', {}, browser.cookie);
    expect(refused.status).toBe(403);
    expect(await queuedNames()).toEqual([]);

    const res = await postForm(app, '/admin/analytics/stats/run/', { _csrf: csrfOf(before) }, browser.cookie);
    expect(res.status).toBe(303);
    const after = await (await getPage(app, res.headers.get('location') ?? LIST, browser.cookie)).text();
    expect(after).toContain('Daily stats queued: 1 event');
    expect(after).not.toContain('last sent never');
    expect(await queuedNames()).toEqual(['daily_stats:existence']); // no numbers from the host: the phone-in only
  });

  it('runs from any process, whether or not its schedule was started', async () => {
    const { app } = await makeAdminApp();
    const res = await api(app, 'POST', '/stats/run');
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ queued: 0, withNumbers: false });
  });
});
