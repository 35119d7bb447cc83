import { describe, expect, it } from 'vitest';
import { DailyStats } from '../../server/host-events/daily-stats.ts';
import { install, outbox } from '../../server/store/schema.ts';
import { addTestToken } from '../helpers/app.ts';
import { api, csrfOf, getPage, login, makeAdminApp, postForm } from '../helpers/admin.ts';

const LIST = '/admin/analytics/analyticstokens/';

function withDailyStats(stats?: () => { users: number; tokens: number; apps: string[] }) {
  const made = makeAdminApp();
  made.services.dailyStats = new DailyStats(made.services, { stats });
  const token = addTestToken(made.services);
  const queuedNames = () => made.services.db.select().from(outbox).all().map((row) => `${row.name}:${String(row.params.label)}`);
  return { ...made, token, queuedNames };
}

describe('running the daily stats from the admin', () => {
  it('POST /api/admin/stats/run queues one run now and stores when it ran', async () => {
    const { app, services, queuedNames } = withDailyStats(() => ({ users: 12, tokens: 3, apps: ['forum'] }));
    const res = await api(app, 'POST', '/stats/run');
    expect(res.status).toBe(200);
    const run = (await res.json()) as { queued: number; withNumbers: boolean; at: number };
    expect(run).toMatchObject({ queued: 5, withNumbers: true });
    expect(queuedNames().sort()).toEqual(['daily_stats:apps', 'daily_stats:existence', 'daily_stats:tokens', 'daily_stats:users', 'installed_app:forum']);
    expect(services.db.select().from(install).get()?.lastDailyStatsAt).toBe(run.at);
    expect((await api(app, 'POST', '/stats/run', undefined, null)).status).toBe(401);
  });

  it('the list page shows the schedule and its button sends the stats (with CSRF only)', async () => {
    const { app, queuedNames } = withDailyStats();
    const browser = await login(app);
    const before = await (await getPage(app, LIST, browser.cookie)).text();
    expect(before).toContain('last sent never');
    expect(before).toContain('Send daily stats now');

    const refused = await postForm(app, '/admin/analytics/stats/run/', {}, browser.cookie);
    expect(refused.status).toBe(403);
    expect(queuedNames()).toEqual([]);

    const res = await postForm(app, '/admin/analytics/stats/run/', { _csrf: csrfOf(before) }, browser.cookie);
    expect(res.status).toBe(303);
    const after = await (await getPage(app, res.headers.get('location') ?? LIST, browser.cookie)).text();
    expect(after).toContain('Daily stats queued: 1 event');
    expect(after).not.toContain('last sent never');
    expect(queuedNames()).toEqual(['daily_stats:existence']); // no numbers from the host: the phone-in only
  });

  it('runs from any process, whether or not its schedule was started', async () => {
    const { app } = makeAdminApp();
    const res = await api(app, 'POST', '/stats/run');
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ queued: 0, withNumbers: false });
  });
});
