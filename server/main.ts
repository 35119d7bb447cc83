import { serve, type ServerType } from '@hono/node-server';
import { createApp } from './app.ts';
import { ConfigError, loadConfig } from './config.ts';
import { DatabaseError } from './db/database.ts';
import { consoleLogger as log } from './log.ts';
import { Relay } from './relay/relay.ts';
import { createServices, type Services } from './services.ts';

function fail(message: string): never {
  log.error(message);
  process.exit(1);
}

let services: Services;
try {
  const config = loadConfig(process.env);
  services = createServices({ config });
} catch (error) {
  if (error instanceof ConfigError || error instanceof DatabaseError) fail(error.message);
  throw error;
}
const { config } = services;
const app = createApp(services);
const relay = new Relay(services);

const server: ServerType = serve({ fetch: app.fetch, hostname: config.host, port: config.port }, (info) => {
  log.info(`install ${services.identity.uuid}, version ${config.appVersion}, database ${config.dbPath}`);
  log.info(config.disabled ? 'ANALYTICS_DISABLED is on: nothing is queued or sent' : `relaying to ${config.gaUrl}`);
  log.info(config.adminToken ? 'admin on at /admin/' : 'admin off (ANALYTICS_ADMIN_TOKEN is unset)');
  log.info(config.eventsKey ? 'events API on' : 'events API off (ANALYTICS_EVENTS_KEY is unset)');
  relay.start();
  log.info(`listening on http://${info.family === 'IPv6' ? `[${info.address}]` : info.address}:${info.port}`);
});

server.on('error', (error: NodeJS.ErrnoException) => {
  services.db.$client.close();
  if (error.code === 'EADDRINUSE') fail(`${config.host}:${config.port} is already in use (set PORT or HOST)`);
  if (error.code === 'EACCES') fail(`no permission to listen on ${config.host}:${config.port}`);
  fail(`cannot listen on ${config.host}:${config.port}: ${error.message}`);
});

let stopping = false;
/** Stop accepting, let requests in flight finish, then close the database. */
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
    void relay.stop().then(() => {
      services.db.$client.close();
      log.info('database closed');
      process.exit(0);
    });
  });
  if ('closeIdleConnections' in server) server.closeIdleConnections();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
