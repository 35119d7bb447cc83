/**
 * A host app with analytics inside it: the collector's routes under /analytics, a job wrapped in trackTask,
 * the host's numbers for the daily stats. Run it with `node --import tsx examples/host-app.ts`.
 */
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { createAnalytics } from 'ga4-relay-analytics';

const analytics = await createAnalytics({
  // Read once a day, when the daily stats run.
  stats: () => ({ users: 42, tokens: 7, apps: ['forum', 'billing'] }),
});

/** A background job of the host; what it returns (rows removed) becomes the event's value. */
async function purgeExpiredSessions(): Promise<number> {
  return 3;
}

const app = new Hono();
app.get('/', (c) => c.text('Hello from the host app'));
app.route('/analytics', analytics.app);
app.post('/jobs/purge', async (c) => {
  const removed = await analytics.trackTask('host.sessions', 'purge_expired', purgeExpiredSessions);
  return c.json({ removed });
});

analytics.start();
// Loopback unless told otherwise; what is printed is where it really listens.
const server = serve({ fetch: app.fetch, hostname: process.env.HOST ?? '127.0.0.1', port: Number(process.env.PORT ?? 3001) }, (info) => {
  const host = info.family === 'IPv6' ? `[${info.address}]` : info.address;
  console.log(`host app listening on http://${host}:${info.port}`);
});
process.on('SIGTERM', () => {
  server.close();
  // Stops delivery and the daily schedule, then closes the analytics database.
  void analytics.stop().then(() => process.exit(0));
});
