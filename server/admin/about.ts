import { buildRequests, pageViewParams, type MpBody } from '../delivery/measurement-protocol.ts';
import { dailyStatsEvents } from '../host-events/daily-stats.ts';
import { taskEventOf } from '../host-events/task-events.ts';
import { deviceFromUserAgent } from '../ingest/device.ts';
import type { Services } from '../services.ts';
import type { DeviceFields, EventParams, HostStats, OutboxRow } from '../store/types.ts';
import { FEATURES, featureOn, type Feature } from '../tokens/features.ts';
import { skipReason } from '../tokens/team-token.ts';
import { pathsOf, splitBody, type Leaf } from './payload-fields.ts';

/** What an example request is built from: who the install is, what it reports as, and when. */
export interface ExampleSource {
  clientId: string;
  appVersion: string;
  pageOrigin: string;
  /** The host's latest numbers for the daily stats; illustrative ones when the host has sent none. */
  hostStats?: HostStats;
  /** ms since epoch. */
  now: number;
}

/** The example requests of one feature, built by the relay's own code. */
export interface FeatureExample {
  feature: Feature;
  label: string;
  /** The GA event names of the feature, from the features table. */
  eventNames: readonly string[];
  /** The bodies as the relay would post them (one feature never shares a request with another). */
  bodies: MpBody[];
}

/** Every field one feature's requests carry, as dotted paths (see {@link fieldsSentPerFeature}). */
export interface FeatureFields {
  feature: Feature;
  label: string;
  /** The GA event names found in the example bodies. */
  events: string[];
  /** Fields of the whole request: `client_id`, `user_properties.app_version.value`, `device.category`, ... */
  request: string[];
  /** Fields of each event: `name`, `timestamp_micros`, `params.page_location`, ... */
  event: string[];
}

// A common desktop browser: its User-Agent yields every device field GA is given (the string itself never leaves).
const EXAMPLE_USER_AGENT =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';
const EXAMPLE_HIT = { path: '/forum/topics/', title: 'Topics · Forum', language: 'en-GB' };
const EXAMPLE_TASK = { namespace: 'billing.invoices', task: 'send_reminders', result: 'Success', value: 12 };
/** A host's own stats event (`eventType: 'stats'`): a number of its own, sent under the daily-stats switch. */
const EXAMPLE_HOST_STAT = { namespace: 'forum', task: 'topics', label: 'open', value: 42, eventType: 'stats' as const };
/** Shown when the host has not sent its numbers yet: the shape is what matters, the numbers are made up. */
export const ILLUSTRATIVE_STATS: HostStats = { users: 120, tokens: 85, apps: ['forum', 'billing'] };
/** The source {@link fieldsSentPerFeature} uses without an install at hand: field names do not depend on it. */
const PLACEHOLDER_SOURCE: ExampleSource = {
  clientId: '00000000-0000-4000-8000-000000000000',
  appVersion: '0.0.0',
  pageOrigin: 'https://app.invalid',
  now: Date.UTC(2026, 0, 1),
};

/** An outbox row as the relay reads it back, for events that never went through the outbox. */
function exampleRow(id: number, name: string, params: EventParams, device: DeviceFields | null, at: number): OutboxRow {
  return { id, tokenId: 0, name, params, device, deviceKey: device ? JSON.stringify(device) : '', occurredAt: at, attempts: 0, dueAt: at };
}

/**
 * The events each feature queues, made by the same functions as the real ones: the page-view params and device
 * fields of `/collect`, the host's task event of `analyticsEvent()`, the daily-stats run's events and a host's
 * own stats event.
 */
function exampleRows(feature: Feature, source: ExampleSource): OutboxRow[] {
  const { now } = source;
  switch (feature) {
    case 'pageViews':
      return [
        exampleRow(1, 'page_view', pageViewParams(EXAMPLE_HIT, source.pageOrigin, now), deviceFromUserAgent(EXAMPLE_USER_AGENT, EXAMPLE_HIT.language), now),
      ];
    case 'taskEvents': {
      const { name, params } = taskEventOf(EXAMPLE_TASK);
      return [exampleRow(1, name, params, null, now)];
    }
    case 'dailyStats': {
      const run = dailyStatsEvents(source.hostStats ?? ILLUSTRATIVE_STATS).map((event, i) => exampleRow(i + 1, event.name, event.params, null, now));
      const { name, params } = taskEventOf(EXAMPLE_HOST_STAT);
      return [...run, exampleRow(run.length + 1, name, params, null, now)];
    }
  }
}

/**
 * One example per feature, in the features table's order, grouped into requests by the relay's `buildRequests`:
 * what a token with that feature on receives, field for field.
 */
export function exampleRequests(source: ExampleSource): FeatureExample[] {
  return FEATURES.map(({ feature, label, events }) => ({
    feature,
    label,
    eventNames: events,
    bodies: buildRequests(exampleRows(feature, source), source.clientId, source.appVersion).map((request) => request.body),
  }));
}

/** The fields found in some request bodies (parsed JSON), each path once, in the order they first appear. */
export function fieldsOfBodies(bodies: unknown[]): Pick<FeatureFields, 'events' | 'request' | 'event'> {
  const parts = bodies.map(splitBody);
  const events = parts.flatMap((part) => part.events);
  return {
    events: [...new Set(events.map((event) => event.name))],
    request: pathsOf(parts.flatMap((part) => part.request)),
    event: pathsOf(events.flatMap((event) => event.leaves)),
  };
}

/**
 * Per feature, every field that leaves the install, read off example requests built by the relay's own code
 * (so the list cannot drift from what is sent). Field names do not depend on the install: without a source,
 * a placeholder identity is used.
 * @example fieldsSentPerFeature()[1].event // ['name', 'timestamp_micros', 'params.namespace', 'params.task', ...]
 */
export function fieldsSentPerFeature(source: ExampleSource = PLACEHOLDER_SOURCE): FeatureFields[] {
  return exampleRequests(source).map(({ feature, label, bodies }) => ({ feature, label, ...fieldsOfBodies(bodies) }));
}

/** What each request-level field is, for people. */
const REQUEST_MEANINGS: Record<string, string> = {
  client_id: 'This install’s random UUID, made once and never changed; GA counts the install as its “user”.',
  non_personalized_ads: 'Always true: GA is told not to use the data for ad personalisation.',
  'user_properties.app_version.value': 'The version this install reports (ANALYTICS_APP_VERSION, else the package’s version).',
  'device.category': 'desktop, mobile, tablet or smart TV, worked out here from the visitor’s User-Agent (the string itself is not sent).',
  'device.language': 'The browser’s language (navigator.language).',
  'device.operating_system': 'The operating system’s name, from the User-Agent.',
  'device.operating_system_version': 'The operating system’s version, from the User-Agent.',
  'device.browser': 'The browser’s name, from the User-Agent.',
  'device.browser_version': 'The browser’s version, from the User-Agent.',
};

/** What each event-level field is, per feature (the same parameter can mean different things in two features). */
const EVENT_MEANINGS: Record<Feature, Record<string, string>> = {
  pageViews: {
    name: 'Always page_view.',
    timestamp_micros: 'When the page was viewed (microseconds since 1970).',
    'params.page_location': 'ANALYTICS_PAGE_ORIGIN followed by the page’s path; the query string and fragment are dropped, e-mail addresses replaced by [email].',
    'params.page_title': 'The page’s title (e-mail addresses replaced by [email]).',
    'params.language': 'The browser’s language.',
    'params.session_id': 'The start (unix seconds) of the current 30-minute window: groups the install’s page views into sessions.',
    'params.engagement_time_msec': 'Always 1: GA’s realtime view counts a user only with some engagement time.',
  },
  taskEvents: {
    name: 'Always task_event.',
    timestamp_micros: 'When the task ran (microseconds since 1970).',
    'params.namespace': 'Where the work lives in the host, e.g. billing.invoices.',
    'params.task': 'The work’s name, e.g. send_reminders.',
    'params.label': 'An optional label the host gives (often empty).',
    'params.result': 'Success, or the class name of the error (never its message).',
    'params.value': 'A context number, e.g. how many rows a bulk task touched, or 1/0 for yes/no.',
  },
  dailyStats: {
    name: 'daily_stats for the phone-in and the numbers, installed_app once per installed app.',
    timestamp_micros: 'When the daily run happened (microseconds since 1970).',
    'params.label': 'Which number (existence, users, tokens or apps), or the installed app’s name; for a host’s own stats event, its label.',
    'params.value': 'The number: 1 for the phone-in and for each installed app; for a host’s own stats event, its number.',
    'params.namespace': 'Only in a host’s own stats event: where the number lives in the host, e.g. forum.',
    'params.task': 'Only in a host’s own stats event: what it counts, e.g. topics.',
    'params.result': 'Only in a host’s own stats event: a result the host gives (often empty).',
  },
};

/** What a field means, or undefined when no one has written it down yet. */
export function fieldMeaning(feature: Feature, level: 'request' | 'event', path: string): string | undefined {
  return level === 'request' ? REQUEST_MEANINGS[path] : EVENT_MEANINGS[feature][path];
}

/** When each feature sends, for people. */
const TRIGGERS: Record<Feature, string> = {
  pageViews: 'When a page carrying the browser snippet loads, and on each in-page navigation.',
  taskEvents: 'When the host reports a piece of work (analyticsEvent(), trackTask() or POST /api/events).',
  dailyStats:
    'Once a day (or when an admin presses “Send daily stats now”), and when the host reports a stats event of its own (analyticsEvent() or POST /api/events with the stats type).',
};

/** One field as the about page lists it: where it sits, its value in the live example, what it means. */
export interface AboutField {
  path: string;
  example: Leaf['value'];
  meaning: string | undefined;
}

/** One feature on the about page. */
export interface AboutFeature extends FeatureFields {
  trigger: string;
  /** The tokens with this feature on, and why the relay skips one, if it does. */
  recipients: Array<{ id: number; name: string; measurementId: string; skipped: string | undefined }>;
  requestFields: AboutField[];
  /** Event-level fields per GA event name, each with its value in the first example event of that name that has it. */
  eventFields: Array<{ event: string; fields: AboutField[] }>;
  /** The example bodies, as indented JSON (the relay posts them unindented). */
  examples: string[];
}

/** Everything the about page shows. */
export interface AboutData {
  uuid: string;
  appVersion: string;
  pageOrigin: string;
  gaUrl: string;
  disabled: boolean;
  /** Whether the daily-stats example holds the host's own latest numbers (else illustrative ones). */
  hostStatsKnown: boolean;
  features: AboutFeature[];
}

/** The about page's data: live examples from this install's identity, version, host numbers and tokens. */
export async function aboutData(services: Pick<Services, 'config' | 'identity' | 'store' | 'tokens' | 'clock'>): Promise<AboutData> {
  const { config, identity } = services;
  const [hostStats, tokens] = await Promise.all([services.store.hostStats(), services.tokens.list()]);
  const source: ExampleSource = { clientId: identity.uuid, appVersion: config.appVersion, pageOrigin: config.pageOrigin, hostStats, now: services.clock() };
  const features = exampleRequests(source).map((example): AboutFeature => {
    const { feature, bodies } = example;
    const parts = bodies.map(splitBody);
    const requestLeaves = firstOfEachPath(parts.flatMap((part) => part.request));
    const events = parts.flatMap((part) => part.events);
    return {
      feature,
      label: example.label,
      ...fieldsOfBodies(bodies),
      trigger: TRIGGERS[feature],
      recipients: tokens
        .filter((token) => featureOn(token, feature))
        .map((token) => ({ id: token.id, name: token.name, measurementId: token.measurementId, skipped: skipReason(token) })),
      requestFields: requestLeaves.map((leaf) => ({ path: leaf.path, example: leaf.value, meaning: fieldMeaning(feature, 'request', leaf.path) })),
      // Every field any event of that name carries (a host's own stats event has more than the daily run's).
      eventFields: [...new Set(events.map((event) => event.name))].map((name) => ({
        event: name,
        fields: firstOfEachPath(events.filter((event) => event.name === name).flatMap((event) => event.leaves)).map((leaf) => ({
          path: leaf.path,
          example: leaf.value,
          meaning: fieldMeaning(feature, 'event', leaf.path),
        })),
      })),
      examples: bodies.map((body) => JSON.stringify(body, null, 2)),
    };
  });
  return {
    uuid: identity.uuid,
    appVersion: config.appVersion,
    pageOrigin: config.pageOrigin,
    gaUrl: config.gaUrl,
    disabled: config.disabled,
    hostStatsKnown: hostStats !== undefined,
    features,
  };
}

function firstOfEachPath(leaves: Leaf[]): Leaf[] {
  const seen = new Set<string>();
  return leaves.filter((leaf) => !seen.has(leaf.path) && seen.add(leaf.path));
}
