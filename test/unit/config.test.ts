import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, resolveConfig } from '../../server/core/config.ts';
import { describeLocation } from '../../server/store/location.ts';

describe('loadConfig', () => {
  it('gives the documented defaults for an empty environment', () => {
    const config = loadConfig({}, '1.2.3');
    expect(config).toEqual({
      port: 3000,
      host: '127.0.0.1',
      dbPath: './data/analytics.db',
      relay: true,
      leaseSeconds: 30,
      outboxMax: 100_000,
      maxConnections: 10_000,
      maxConnectionsPerAddress: 256,
      disabled: false,
      gaUrl: 'https://www.google-analytics.com',
      appVersion: '1.2.3',
      pageOrigin: 'https://app.invalid',
      adminToken: undefined,
      eventsKey: undefined,
      metricsToken: undefined,
      trustProxy: false,
      rateLimitPerMinute: 1200,
    });
  });

  it('takes the package version when ANALYTICS_APP_VERSION is unset', () => {
    expect(loadConfig({}).appVersion).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('reads every variable', () => {
    const config = loadConfig({
      PORT: '8080',
      HOST: '0.0.0.0',
      ANALYTICS_DB: ':memory:',
      ANALYTICS_RELAY: 'off',
      ANALYTICS_RELAY_LEASE_SECONDS: '60',
      ANALYTICS_OUTBOX_MAX: '5000',
      ANALYTICS_MAX_CONNECTIONS: '200',
      ANALYTICS_MAX_CONNECTIONS_PER_ADDRESS: '20',
      ANALYTICS_DISABLED: '1',
      ANALYTICS_GA_URL: 'https://region1.google-analytics.com/',
      ANALYTICS_APP_VERSION: '4.0.0',
      ANALYTICS_PAGE_ORIGIN: 'https://auth.example.org/ignored/path',
      ANALYTICS_ADMIN_TOKEN: 'a-long-enough-admin-secret',
      ANALYTICS_EVENTS_KEY: 'an-events-key-0123',
      ANALYTICS_METRICS_TOKEN: 'a-metrics-token-0123',
      ANALYTICS_TRUST_PROXY: 'TRUE',
      ANALYTICS_RATE_LIMIT: '30',
    });
    expect(config).toEqual({
      port: 8080,
      host: '0.0.0.0',
      dbPath: ':memory:',
      relay: false,
      leaseSeconds: 60,
      outboxMax: 5000,
      maxConnections: 200,
      maxConnectionsPerAddress: 20,
      disabled: true,
      gaUrl: 'https://region1.google-analytics.com',
      appVersion: '4.0.0',
      pageOrigin: 'https://auth.example.org',
      adminToken: 'a-long-enough-admin-secret',
      eventsKey: 'an-events-key-0123',
      metricsToken: 'a-metrics-token-0123',
      trustProxy: true,
      rateLimitPerMinute: 30,
    });
  });

  it.each([
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['PORT', '-1'],
    ['ANALYTICS_DISABLED', 'maybe'],
    ['ANALYTICS_TRUST_PROXY', 'yes please'],
    ['ANALYTICS_GA_URL', 'ftp://example.com'],
    ['ANALYTICS_GA_URL', 'not a url'],
    ['ANALYTICS_PAGE_ORIGIN', 'javascript:alert(1)'],
    ['ANALYTICS_GA_URL', 'https://user:pass@ga.example'],
    ['ANALYTICS_GA_URL', 'https://ga.example/?x=1'],
    ['ANALYTICS_RATE_LIMIT', '0'],
    ['ANALYTICS_RATE_LIMIT', 'lots'],
    ['ANALYTICS_RELAY', 'maybe'],
    ['ANALYTICS_RELAY_LEASE_SECONDS', '14'],
    ['ANALYTICS_OUTBOX_MAX', '0'],
    ['ANALYTICS_OUTBOX_MAX', '-5'],
    ['ANALYTICS_MAX_CONNECTIONS', 'x'],
    ['ANALYTICS_MAX_CONNECTIONS', '1.5'],
    ['ANALYTICS_MAX_CONNECTIONS_PER_ADDRESS', '0'],
  ])('refuses %s=%s with a message naming the variable', (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(new RegExp(`^${name} `));
  });

  it.each([
    ['on', true],
    ['ON', true],
    ['true', true],
    ['1', true],
    ['off', false],
    ['false', false],
    ['0', false],
    ['', true],
  ])('reads ANALYTICS_RELAY=%s as %s (unset or empty: on)', (value, relay) => {
    expect(loadConfig({ ANALYTICS_RELAY: value }).relay).toBe(relay);
  });

  it('says what ANALYTICS_RELAY takes', () => {
    expect(() => loadConfig({ ANALYTICS_RELAY: 'maybe' })).toThrow(/^ANALYTICS_RELAY must be on or off \(got "maybe"\)$/);
  });

  it.each([
    ['outboxMax', 0],
    ['outboxMax', 2.5],
    ['maxConnections', 0],
    ['maxConnections', Number.NaN],
  ] as const)('refuses %s=%s given in code (library use), naming the field', (field, value) => {
    expect(() => resolveConfig({ [field]: value }, {})).toThrow(new RegExp(`^${field} must be a whole number of 1 or more$`));
  });

  it('never echoes a URL that may hold a password', () => {
    expect(() => loadConfig({ ANALYTICS_GA_URL: 'https://user:hunter2@ga.example' })).toThrow(/^ANALYTICS_GA_URL must be an http\(s\) URL without user, password, query or fragment$/);
  });

  it.each([
    'postgresql+psycopg://analytics:hunter2@db.internal:5432/analytics',
    'jdbc:postgresql://db.internal/analytics?user=analytics&password=hunter2',
    'mysql://analytics:hunter2@db.internal/analytics',
    'pgsql://analytics:hunter2@db.internal/analytics',
  ])('refuses ANALYTICS_DB=%s (not a SQLite path, not PostgreSQL) without echoing it', (value) => {
    let message = '';
    try {
      loadConfig({ ANALYTICS_DB: value });
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      message = (error as Error).message;
    }
    expect(message).toMatch(/^ANALYTICS_DB must be a SQLite file path or a postgres:\/\/ \(postgresql:\/\/\) URL/);
    expect(message).not.toContain('hunter2');
    expect(() => resolveConfig({ dbPath: value }, {})).toThrow(/^dbPath must be a SQLite file path/);
  });

  it.each([
    'postgres://analytics:ab/cd+ef@127.0.0.1:5432/analytics',
    'postgres://analytics:ab?cd@127.0.0.1:5432/analytics',
    'postgres://analytics:ab#cd@127.0.0.1:5432/analytics',
    'postgresql://analytics:12#cd@db.internal/analytics',
    'postgres://analytics:abcd@127.0.0.1:99999/analytics',
  ])('refuses ANALYTICS_DB=%s (a PostgreSQL URL that does not parse) without echoing it', (value) => {
    let error: unknown;
    try {
      loadConfig({ ANALYTICS_DB: value });
    } catch (thrown) {
      error = thrown;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message).toBe('ANALYTICS_DB is not a valid PostgreSQL URL (percent-encode / # ? @ in the password)');
    expect(message).not.toContain('cd'); // every password above holds it
    // Library use: the same check on the field, as a ConfigError rather than a bare TypeError.
    expect(() => resolveConfig({ dbPath: value }, {})).toThrow(ConfigError);
    expect(() => resolveConfig({ dbPath: value }, {})).toThrow(/^dbPath is not a valid PostgreSQL URL/);
  });

  it('takes a PostgreSQL URL whose password is percent-encoded', () => {
    const value = 'postgres://analytics:ab%2Fcd%23ef%3F%40@127.0.0.1:5432/analytics?sslmode=require';
    expect(loadConfig({ ANALYTICS_DB: value }).dbPath).toBe(value);
  });

  it.each([
    './data/analytics.db',
    ':memory:',
    '/srv/analytics/data/analytics.db',
    'postgres://analytics:pw@db/analytics',
    'POSTGRESQL://db/analytics',
    // A Unix socket: no host after the `@`, the socket's folder in the query (pg connects there).
    'postgres://analytics:pw@/analytics?host=/var/run/postgresql',
    'postgres://analytics@/analytics?host=/var/run/postgresql',
  ])('takes ANALYTICS_DB=%s', (value) => {
    expect(loadConfig({ ANALYTICS_DB: value }).dbPath).toBe(value);
    expect(resolveConfig({ dbPath: value }, {}).dbPath).toBe(value);
  });

  it.each(['postgres://analytics:pw@/analytics?host=/var/run/postgresql', 'postgres://analytics@/analytics?host=/var/run/postgresql'])(
    'takes ANALYTICS_DB=%s, which pg reads as the socket folder /var/run/postgresql',
    (value) => {
      expect(loadConfig({ ANALYTICS_DB: value }).dbPath).toBe(value);
      // What pg makes of it, without connecting: the same URL pg is given.
      const client = new pg.Client({ connectionString: value });
      expect([client.host, client.database, client.user]).toEqual(['/var/run/postgresql', 'analytics', 'analytics']);
    },
  );

  it.each(['ANALYTICS_ADMIN_TOKEN', 'ANALYTICS_EVENTS_KEY', 'ANALYTICS_METRICS_TOKEN'])('refuses a short %s without echoing it', (name) => {
    let message = '';
    try {
      loadConfig({ [name]: 'short-secret' });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(new RegExp(`^${name} must be at least 16 characters`));
    expect(message).not.toContain('short-secret');
  });

  it('refuses two secrets that are the same, naming both and echoing neither', () => {
    const secret = 'the-same-secret-twice-0123';
    expect(() => loadConfig({ ANALYTICS_ADMIN_TOKEN: secret, ANALYTICS_EVENTS_KEY: secret })).toThrow(
      /^ANALYTICS_ADMIN_TOKEN and ANALYTICS_EVENTS_KEY must be different secrets$/,
    );
    expect(() => loadConfig({ ANALYTICS_EVENTS_KEY: secret, ANALYTICS_METRICS_TOKEN: secret })).toThrow(
      /^ANALYTICS_EVENTS_KEY and ANALYTICS_METRICS_TOKEN must be different secrets$/,
    );
  });
});

describe('describeLocation', () => {
  it('names a database for messages without its user or password, a Unix socket by its folder', () => {
    expect(describeLocation('postgres://analytics:s3cret@db.internal:5433/analytics')).toBe('PostgreSQL at db.internal:5433/analytics');
    expect(describeLocation('postgres://analytics:s3cret@/analytics?host=/var/run/postgresql')).toBe('PostgreSQL at /var/run/postgresql:5432/analytics');
    expect(describeLocation('postgresql://analytics@/analytics?host=/var/run/postgresql')).toBe('PostgreSQL at /var/run/postgresql:5432/analytics');
    expect(describeLocation('./data/analytics.db')).toBe('./data/analytics.db');
    for (const url of ['postgres://analytics:s3cret@db.internal:5433/analytics', 'postgres://analytics:s3cret@/analytics?host=/var/run/postgresql']) {
      expect(describeLocation(url)).not.toContain('s3cret');
    }
  });
});

