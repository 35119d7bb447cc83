import { Counter, Gauge, Registry } from 'prom-client';

/** The counters an operator reads at `GET /metrics`. */
export interface Metrics {
  registry: Registry;
  hitsReceived: Counter<string>;
  hitsIgnored: Counter<'reason'>;
  hitsRefused: Counter<'reason'>;
  eventsQueued: Counter<'type'>;
  eventsDelivered: Counter<'token'>;
  eventsFailed: Counter<'token'>;
  eventsRetried: Counter<'token'>;
  eventsDropped: Counter<'reason' | 'feature'>;
  gaRequests: Counter<'token' | 'outcome'>;
  outboxDepth: Gauge<string>;
  /** Wrong credentials tried, by surface (page, api, events, metrics). */
  credentialFailures: Counter<'surface'>;
  /** Read when scraped: the number of events waiting in the outbox (0 until the services point it at theirs). */
  depth: () => Promise<number>;
}

/** Makes a fresh registry (one per app, so tests never share counters). */
export function createMetrics(): Metrics {
  const registry = new Registry();
  const registers = [registry];
  const metrics: Metrics = {
    depth: async () => 0,
    registry,
    hitsReceived: new Counter({ name: 'analytics_hits_received_total', help: 'Page-view hits received at /collect', registers }),
    hitsIgnored: new Counter({
      name: 'analytics_hits_ignored_total',
      help: 'Hits answered 204 but not queued, by reason',
      labelNames: ['reason'],
      registers,
    }),
    hitsRefused: new Counter({
      name: 'analytics_hits_refused_total',
      help: 'Hits answered 4xx and not queued, by reason (invalid, too-large, rate-limited, cut-short)',
      labelNames: ['reason'],
      registers,
    }),
    eventsQueued: new Counter({
      name: 'analytics_events_queued_total',
      help: 'Events written to the outbox (one per token), by type',
      labelNames: ['type'],
      registers,
    }),
    eventsDelivered: new Counter({
      name: 'analytics_events_delivered_total',
      help: 'Events GA accepted, by token id',
      labelNames: ['token'],
      registers,
    }),
    eventsFailed: new Counter({
      name: 'analytics_events_failed_total',
      help: 'Events GA refused for good, by token id',
      labelNames: ['token'],
      registers,
    }),
    eventsRetried: new Counter({
      name: 'analytics_events_retried_total',
      help: 'Event deliveries put back for a later try, by token id',
      labelNames: ['token'],
      registers,
    }),
    eventsDropped: new Counter({
      name: 'analytics_events_dropped_total',
      help: 'Events dropped without being sent (outbox-full, expired, switched-off), by reason and feature',
      labelNames: ['reason', 'feature'],
      registers,
    }),
    gaRequests: new Counter({
      name: 'analytics_ga_requests_total',
      help: 'Requests to GA, by token id and outcome',
      labelNames: ['token', 'outcome'],
      registers,
    }),
    credentialFailures: new Counter({
      name: 'analytics_credential_failures_total',
      help: 'Wrong credentials tried: admin login form (page), admin API (api), events API (events), /metrics (metrics)',
      labelNames: ['surface'],
      registers,
    }),
    outboxDepth: new Gauge({
      name: 'analytics_outbox_depth',
      help: 'Events waiting in the outbox',
      registers,
      async collect() {
        this.set(await metrics.depth());
      },
    }),
  };
  return metrics;
}
