#!/usr/bin/env node
import { createServer, type Server } from 'node:http';
import { ConfigError, resolveConfig } from './core/config.ts';
import { capConnectionsPerAddress } from './core/connections.ts';
import { consoleLogger as log } from './core/log.ts';
import { DeliveryThread } from './delivery/delivery-thread.ts';
import type { Analytics } from './index.ts';
import { DatabaseError } from './store/errors.ts';
import { describeLocation } from './store/location.ts';

// `npm start`: collect (and, unless ANALYTICS_RELAY=off, deliver). `npm run relay` (--relay-only): deliver only.
const relayOnly = process.argv.includes('--relay-only');

function fail(message: string): never {
  log.error(message);
  process.exit(1);
}

let analytics: Analytics;
let servicesOf: typeof import('./services.ts').servicesOf;
try {
  // The store's connection and the relay in a thread of their own: neither a commit's sync nor delivering to GA
  // ever holds up the thread that answers hits. It starts (and opens the database) while this thread loads the
  // routes, which halves the time to the first answer.
  DeliveryThread.startEarly(resolveConfig().dbPath, log);
  const { createAnalytics } = await import('./index.ts');
  analytics = await createAnalytics({ log, thread: true });
  ({ servicesOf } = await import('./services.ts'));
} catch (error) {
  if (error instanceof ConfigError || error instanceof DatabaseError) fail(error.message);
  throw error;
}
const { config } = analytics;
if (relayOnly && !config.relay) fail('npm run relay delivers, but ANALYTICS_RELAY is off: nothing would happen');

/** Where the store is, without a password. */
const database = describeLocation(config.dbPath);

function sayWhatIsOn(): void {
  log.info(`install ${analytics.install.uuid}, version ${config.appVersion}, database ${database}`);
  if (config.disabled) return log.info('ANALYTICS_DISABLED is on: nothing is queued or sent');
  log.info(config.relay ? `relaying to ${config.gaUrl}` : 'relay off (ANALYTICS_RELAY=off): this process only collects');
  // A fresh install has only the team's placeholder token: say once what to do, or nothing will ever be sent.
  if (!servicesOf(analytics).tokens.anyCanReceive()) log.info(NO_TOKEN_HINT);
}

/** The start-up hint while no token can receive events. */
const NO_TOKEN_HINT = `no token can receive events yet: add a GA4 measurement id and API secret at /admin/ or with POST /api/admin/tokens${
  config.adminToken ? '' : ' once ANALYTICS_ADMIN_TOKEN is set'
} (README: Quick start)`;

let server: Server | undefined;
if (relayOnly) {
  sayWhatIsOn();
  analytics.start();
  log.info('delivering only (npm run relay): no HTTP server');
} else {
  // A client dribbling its request is cut off: headers within 10 s, the whole request within 30 s, looked at
  // every second (Node's default looks every 30 s).
  server = createServer(
    { headersTimeout: 10_000, requestTimeout: 30_000, keepAliveTimeout: 5_000, connectionsCheckingInterval: 1_000 },
    analytics.listener,
  );
  server.listen(config.port, config.host, () => {
    sayWhatIsOn();
    log.info(config.adminToken ? 'admin on at /admin/' : 'admin off (ANALYTICS_ADMIN_TOKEN is unset)');
    log.info(config.eventsKey ? 'events API on' : 'events API off (ANALYTICS_EVENTS_KEY is unset)');
    log.info(config.metricsToken ? 'metrics on at /metrics' : 'metrics off (ANALYTICS_METRICS_TOKEN is unset)');
    analytics.start();
    const info = server?.address();
    if (info && typeof info === 'object') log.info(`listening on http://${info.family === 'IPv6' ? `[${info.address}]` : info.address}:${info.port}`);
  });
  // Past this many open connections new ones are closed at once, so slow clients cannot exhaust the process.
  server.maxConnections = config.maxConnections;
  // And one client address cannot take them all (behind a proxy every connection is the proxy's: it limits).
  if (!config.trustProxy) capConnectionsPerAddress(server, config.maxConnectionsPerAddress);
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
}

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
  const closeStore = () =>
    void analytics.stop().then(() => {
      log.info('database closed');
      process.exit(0);
    });
  if (!server) return closeStore();
  server.close(closeStore);
  server.closeIdleConnections();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
