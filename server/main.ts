import { serve, type ServerType } from '@hono/node-server';
import { ConfigError } from './core/config.ts';
import { DatabaseError } from './store/database.ts';
import { createAnalytics, type Analytics } from './index.ts';
import { consoleLogger as log } from './core/log.ts';

function fail(message: string): never {
  log.error(message);
  process.exit(1);
}

let analytics: Analytics;
try {
  analytics = createAnalytics({ log });
} catch (error) {
  if (error instanceof ConfigError || error instanceof DatabaseError) fail(error.message);
  throw error;
}
const { config } = analytics;

const server: ServerType = serve({ fetch: analytics.app.fetch, hostname: config.host, port: config.port }, (info) => {
  log.info(`install ${analytics.install.uuid}, version ${config.appVersion}, database ${config.dbPath}`);
  log.info(config.disabled ? 'ANALYTICS_DISABLED is on: nothing is queued or sent' : `relaying to ${config.gaUrl}`);
  log.info(config.adminToken ? 'admin on at /admin/' : 'admin off (ANALYTICS_ADMIN_TOKEN is unset)');
  log.info(config.eventsKey ? 'events API on' : 'events API off (ANALYTICS_EVENTS_KEY is unset)');
  log.info(config.metricsToken ? 'metrics on at /metrics' : 'metrics off (ANALYTICS_METRICS_TOKEN is unset)');
  analytics.start();
  log.info(`listening on http://${info.family === 'IPv6' ? `[${info.address}]` : info.address}:${info.port}`);
});

server.on('error', (error: NodeJS.ErrnoException) => {
  const where = `${config.host}:${config.port}`;
  const message =
    error.code === 'EADDRINUSE'
      ? `${where} is already in use (set PORT or HOST)`
      : error.code === 'EACCES'
        ? `no permission to listen on ${where}`
        : `cannot listen on ${where}: ${error.message}`;
  // The database is closed first, so no WAL file is left behind.
  void analytics.stop().finally(() => fail(message));
});

let stopping = false;
/** Stop accepting, let requests in flight finish, then stop delivery and the schedule and close the database. */
function shutdown(signal: string): void {
  if (stopping) return;
  stopping = true;
  log.info(`${signal}: shutting down`);
  const forced = setTimeout(() => {
    log.warn('requests still open after 10 s; closing anyway');
    process.exit(1);
  }, 10_000);
  forced.unref();
  server.close(() => {
    void analytics.stop().then(() => {
      log.info('database closed');
      process.exit(0);
    });
  });
  if ('closeIdleConnections' in server) server.closeIdleConnections();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
