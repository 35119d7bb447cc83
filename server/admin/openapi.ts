import { Hono } from 'hono';
import { z } from 'zod';
import { MAX_HIT_BYTES } from '../../shared/wire.ts';
import type { Config } from '../core/config.ts';
import type { DailyStatsRun } from '../host-events/daily-stats.ts';
import { hostStatsSchema } from '../host-events/daily-stats.ts';
import { eventBodySchema, MAX_EVENTS_BODY_BYTES } from '../host-events/events-route.ts';
import { hitSchema } from '../ingest/hit.ts';
import type { SentRequest } from '../store/types.ts';
import { FEATURES } from '../tokens/features.ts';
import { newTokenSchema, tokenPatchSchema, type TokenJson } from '../tokens/token-input.ts';
import { MAX_ADMIN_BODY_BYTES } from './access.ts';
import { retrySchema } from './api-routes.ts';
import type { ValidationMessage, ValidationResult } from './validate.ts';

/** Where the document is served, relative to the collector's root (a host may mount the collector under a prefix). */
export const OPENAPI_PATH = '/api/openapi.json';

type JsonSchema = z.core.JSONSchema.BaseSchema;
/** One JSON Schema per field of `T`: the compiler then refuses a response schema that misses or invents a field. */
type FieldsOf<T> = { [K in keyof Required<T>]: JsonSchema };

// The parts of OpenAPI 3.1's objects this module writes.
type MediaType = { schema: JsonSchema; example?: unknown };
type RequestBody = { description: string; required: boolean; content: Record<string, MediaType> };
type Header = { description: string; schema: JsonSchema };
type ResponseObject = { description: string; headers?: Record<string, Header>; content?: Record<string, MediaType> };
type Ref = { $ref: string };
type Parameter = { name: string; in: 'path' | 'query'; required: boolean; description: string; schema: JsonSchema };
interface Operation {
  operationId: string;
  summary: string;
  description?: string;
  tags: string[];
  security: Array<Record<string, string[]>>;
  parameters?: Parameter[];
  requestBody?: RequestBody;
  responses: Record<string, ResponseObject | Ref>;
}

/** An OpenAPI 3.1 document, as far as this module writes one. */
export interface OpenApiDocument {
  openapi: '3.1.1';
  info: { title: string; version: string; description: string };
  servers: Array<{ url: string; description: string }>;
  tags: Array<{ name: string; description: string }>;
  paths: Record<string, Record<string, Operation>>;
  components: {
    schemas: Record<string, JsonSchema>;
    responses: Record<string, ResponseObject>;
    securitySchemes: Record<string, { type: 'http'; scheme: 'bearer'; description: string }>;
  };
}

// Typed against the schemas' input, so an example that stops fitting its schema fails to compile (the test
// also sends each one to its route).
const EXAMPLES = {
  hit: { path: '/projects/42', title: 'Project 42', language: 'en-US' } satisfies z.input<typeof hitSchema>,
  event: { namespace: 'billing.invoices', task: 'send_reminders', label: 'nightly', result: 'Success', value: 12, type: 'task' } satisfies z.input<
    typeof eventBodySchema
  >,
  hostStats: { users: 42, tokens: 3, apps: ['forum', 'wiki'] } satisfies z.input<typeof hostStatsSchema>,
  newToken: { name: 'Our GA4 property', measurementId: 'G-AB12CD34EF', apiSecret: 'aBcD1234efGH5678_-', sendDailyStats: true, sendTaskEvents: true, sendPageViews: true, ignorePaths: ['^/admin/'] } satisfies z.input<
    typeof newTokenSchema
  >,
  tokenPatch: { sendPageViews: false, ignorePaths: ['^/admin/', '^/internal/'] } satisfies z.input<typeof tokenPatchSchema>,
  retry: { ids: [17, 18] } satisfies z.input<typeof retrySchema>,
};

/**
 * A validating zod schema as JSON Schema 2020-12 (OpenAPI 3.1's dialect), as a client should send it.
 * @example jsonSchemaOf(retrySchema) // { type: 'object', properties: { ids: … }, additionalProperties: false }
 */
export function jsonSchemaOf(schema: z.ZodType): JsonSchema {
  const { $schema: _dialect, ...json } = z.toJSONSchema(schema, {
    target: 'draft-2020-12',
    // What a client sends: a field with a default is optional, a transformed field is described by what it accepts.
    io: 'input',
    // A part JSON Schema cannot say becomes `{}` (anything) instead of failing the whole document; refinements
    // are left out the same way, and the route's own check answers 400 for them.
    unrepresentable: 'any',
    override: ({ zodSchema, jsonSchema }) => widenCaseInsensitivePattern(zodSchema, jsonSchema),
  });
  return json;
}

/**
 * JSON Schema patterns carry no flags: a zod regex with `i` would be described stricter than the route is
 * (`g-ab12` refused by the document, accepted by the route), so its letters are widened to both cases.
 */
function widenCaseInsensitivePattern(zodSchema: z.core.$ZodTypes, jsonSchema: JsonSchema): void {
  if (typeof jsonSchema.pattern !== 'string') return;
  for (const check of zodSchema._zod.def.checks ?? []) {
    const def = check._zod.def;
    if (!('pattern' in def) || !(def.pattern instanceof RegExp)) continue;
    if (!def.pattern.flags.includes('i') || def.pattern.source !== jsonSchema.pattern) continue;
    const widened = caseInsensitiveSource(def.pattern.source);
    // A pattern too intricate to widen safely is better left out than described wrongly.
    if (widened === undefined) delete jsonSchema.pattern;
    else jsonSchema.pattern = widened;
  }
}

/**
 * A regex source that matches, without flags, what `source` matches with `i`; undefined when the source holds
 * letters that are not literals (property, unicode, hex and control escapes, named groups).
 * @example caseInsensitiveSource('^G-[A-Z0-9]+$') // '^[gG]-[A-Z0-9a-z]+$'
 */
export function caseInsensitiveSource(source: string): string | undefined {
  if (/\\[pPkuxc]|\(\?<[A-Za-z]/.test(source)) return undefined;
  const otherCase = (text: string): string => (text === text.toLowerCase() ? text.toUpperCase() : text.toLowerCase());
  let out = '';
  let inClass = false;
  for (let i = 0; i < source.length; i += 1) {
    const ch = source[i] as string;
    if (ch === '\\') {
      out += source.slice(i, i + 2);
      i += 1;
    } else if (inClass && /[A-Za-z]/.test(ch)) {
      // A letter range (`A-Z`) or a single letter in a class: add its other case to the same class.
      const item = source[i + 1] === '-' && /[A-Za-z]/.test(source[i + 2] ?? '') ? source.slice(i, i + 3) : ch;
      out += item + otherCase(item);
      i += item.length - 1;
    } else if (!inClass && /[A-Za-z]/.test(ch)) {
      out += `[${ch.toLowerCase()}${ch.toUpperCase()}]`;
    } else {
      if (ch === '[') inClass = true;
      if (ch === ']') inClass = false;
      out += ch;
    }
  }
  return out;
}

const ref = (name: string): JsonSchema => ({ $ref: `#/components/schemas/${name}` });
const refusal = (status: number): Ref => ({ $ref: `#/components/responses/Status${status}` });
const json = (description: string, schema: JsonSchema): ResponseObject => ({ description, content: { 'application/json': { schema } } });
const jsonBody = (schema: string, description: string, example: unknown, required = true): RequestBody => ({
  description,
  required,
  content: { 'application/json': { schema: ref(schema), example } },
});
const errorResponse = (description: string, headers?: Record<string, Header>): ResponseObject => ({ ...json(description, ref('Error')), ...(headers && { headers }) });
const RETRY_AFTER: Record<string, Header> = { 'Retry-After': { description: 'Seconds to wait before trying again.', schema: { type: 'integer' } } };
const int: JsonSchema = { type: 'integer' };
const text: JsonSchema = { type: 'string' };
const FEATURE_NAMES = FEATURES.map((info) => info.feature);

/** Response bodies, written by hand (no zod schema produces them), each keyed to its TypeScript type. */
const RESPONSE_SCHEMAS: Record<string, JsonSchema> = {
  Error: { type: 'object', properties: { error: { type: 'string', description: 'What went wrong, for a person to read.' } }, required: ['error'] },
  Token: objectOf<TokenJson>({
    id: int,
    name: text,
    measurementId: text,
    apiSecret: { type: 'string', description: 'Masked (e.g. `••••Mn`), `""` when unset: the secret is write-only.' },
    sendDailyStats: { type: 'boolean' },
    sendTaskEvents: { type: 'boolean' },
    sendPageViews: { type: 'boolean' },
    ignorePaths: { type: 'array', items: text, description: 'Regular expressions matched against page paths.' },
  }),
  ValidationResult: objectOf<ValidationResult>(
    {
      feature: { type: 'string', enum: FEATURE_NAMES },
      validationMessages: {
        type: 'array',
        items: objectOf<ValidationMessage>({ fieldPath: text, description: text, validationCode: text }),
        description: "GA's findings; empty when GA found nothing wrong.",
      },
      error: { type: 'string', description: 'Set when GA could not be asked or did not answer as expected.' },
    },
    ['error'],
  ),
  DailyStatsRun: objectOf<DailyStatsRun>({ at: { ...int, description: 'ms since epoch' }, queued: int, withNumbers: { type: 'boolean' } }),
  SentRequest: objectOf<SentRequest>({
    at: { ...int, description: 'When the request went to GA (ms since epoch).' },
    status: { ...int, description: "GA's HTTP status." },
    events: { ...int, description: 'Events in the request.' },
    body: { type: 'string', contentMediaType: 'application/json', description: 'The JSON exactly as GA received it (the API secret is in the URL, never here).' },
  }),
};

/** An object schema whose properties are those of `T` (all required but the `optional` ones). */
function objectOf<T>(properties: FieldsOf<T>, optional: ReadonlyArray<keyof T> = []): JsonSchema {
  const names = Object.keys(properties);
  return { type: 'object', properties, required: names.filter((name) => !optional.includes(name as keyof T)) };
}

const SECURITY = { none: [], admin: [{ adminToken: [] }], events: [{ eventsKey: [] }] };
const ADMIN_REFUSALS = [401, 404, 429, 503];
const TOKEN_ID: Parameter = { name: 'id', in: 'path', required: true, description: 'The token id.', schema: { type: 'integer', minimum: 1 } };

/** An operation with its success responses and, by status, the shared refusals (all of which answer `{error}`). */
function operation(
  fields: Omit<Operation, 'responses' | 'security' | 'tags'> & { auth: keyof typeof SECURITY; tag: string },
  ok: Record<string, ResponseObject>,
  refusals: number[],
): Operation {
  const { auth, tag, ...rest } = fields;
  const responses: Record<string, ResponseObject | Ref> = { ...ok };
  for (const status of [...refusals].sort((a, b) => a - b)) responses[String(status)] = refusal(status);
  return { ...rest, tags: [tag], security: SECURITY[auth], responses };
}

/** An admin API operation: admin bearer, and the admin's refusals (a body adds 400 and 413, `also` any others). */
function adminOperation(
  operationId: string,
  summary: string,
  ok: Record<string, ResponseObject>,
  extra: Pick<Operation, 'parameters' | 'requestBody'> & { also?: number[] } = {},
): Operation {
  const { also = [], ...fields } = extra;
  const refusals = [...ADMIN_REFUSALS, ...(fields.requestBody ? [400, 413] : []), ...also];
  return operation({ operationId, summary, auth: 'admin', tag: 'admin', ...fields }, ok, refusals);
}

/** The paths: every route of `/collect`, `/api/events`, `/api/stats` and `/api/admin`. */
function paths(): OpenApiDocument['paths'] {
  const token = json('The token.', ref('Token'));
  const withId = { parameters: [TOKEN_ID] };
  return {
    '/collect': {
      post: operation(
        {
          operationId: 'collectPageView',
          summary: 'Record a page view (what the browser snippet sends)',
          description: `Read as JSON whatever the Content-Type (the snippet sends \`text/plain\`, so no CORS preflight). The query and fragment of \`path\` are dropped and e-mail addresses redacted. At most ${MAX_HIT_BYTES} bytes; rate-limited per client address.`,
          auth: 'none',
          tag: 'collect',
          requestBody: {
            description: 'One page view: the page path, title and browser language.',
            required: true,
            content: Object.fromEntries(['text/plain', 'application/json'].map((type) => [type, { schema: ref('Hit'), example: EXAMPLES.hit }])),
          },
        },
        {
          204: {
            description: 'Stored for delivery, or ignored on purpose (then `X-Analytics-Ignored` says why).',
            headers: { 'X-Analytics-Ignored': { description: 'Why the hit was not queued.', schema: { type: 'string', enum: ['disabled', 'bot', 'ignored-path', 'no-token'] } } },
          },
        },
        [400, 413, 429, 503],
      ),
    },
    '/api/events': {
      post: operation(
        {
          operationId: 'postEvent',
          summary: "Queue a host's task event (or a stats event with `type: \"stats\"`)",
          description: `At most ${MAX_EVENTS_BODY_BYTES} bytes. Answers 404 while ANALYTICS_EVENTS_KEY is unset.`,
          auth: 'events',
          tag: 'host',
          requestBody: jsonBody('EventBody', 'One event: where the work lives, what it is, and how it went. Unknown fields are refused.', EXAMPLES.event),
        },
        { 202: json('Queued for every token that receives this kind of event.', { type: 'object', properties: { queued: int }, required: ['queued'] }) },
        [400, 401, 404, 413, 429, 503],
      ),
    },
    '/api/stats': {
      put: operation(
        {
          operationId: 'putHostStats',
          summary: "Set the host's latest numbers for the daily stats",
          description: `At most ${MAX_EVENTS_BODY_BYTES} bytes. Answers 404 while ANALYTICS_EVENTS_KEY is unset.`,
          auth: 'events',
          tag: 'host',
          requestBody: jsonBody('HostStats', 'The number of users and tokens, and the installed apps, sent with the next daily run.', EXAMPLES.hostStats),
        },
        { 204: { description: 'Kept for the next daily run.' } },
        [400, 401, 404, 413, 429, 503],
      ),
    },
    '/api/admin/tokens': {
      get: adminOperation('listTokens', 'List the tokens (GA4 properties)', {
        200: json('Every token.', { type: 'object', properties: { tokens: { type: 'array', items: ref('Token') } }, required: ['tokens'] }),
      }),
      post: adminOperation(
        'createToken',
        'Add a token',
        { 201: { ...token, description: 'The new token.', headers: { Location: { description: 'Where the new token is.', schema: text } } } },
        { requestBody: jsonBody('NewToken', 'A GA4 property to report to: its measurement id and API secret, and which features it receives.', EXAMPLES.newToken) },
      ),
    },
    '/api/admin/tokens/{id}': {
      get: adminOperation('getToken', 'Read a token', { 200: token }, withId),
      patch: adminOperation('updateToken', 'Change some fields of a token', { 200: token }, {
        ...withId,
        requestBody: jsonBody('TokenPatch', 'The fields to change; a masked secret sent back as read keeps the stored one, and `id` may be sent back but not changed.', EXAMPLES.tokenPatch),
      }),
      delete: adminOperation('deleteToken', 'Delete a token (its waiting events with it)', { 204: { description: 'Deleted.' } }, withId),
    },
    '/api/admin/tokens/{id}/validate': {
      post: adminOperation(
        'validateToken',
        "Send one sample of each enabled feature to GA's validation endpoint",
        { 200: json("GA's validation messages, per feature.", { type: 'object', properties: { results: { type: 'array', items: ref('ValidationResult') } }, required: ['results'] }) },
        { ...withId, also: [409] },
      ),
    },
    '/api/admin/tokens/{id}/retry': {
      post: adminOperation(
        'retryFailed',
        'Queue failed deliveries of a token again',
        { 200: json('How many events were queued again.', { type: 'object', properties: { retried: int }, required: ['retried'] }) },
        { ...withId, requestBody: jsonBody('Retry', 'Which failed events to retry (ids from `GET /api/admin/failed`); an empty body or no `ids` retries them all.', EXAMPLES.retry, false) },
      ),
    },
    '/api/admin/tokens/{id}/sent': {
      get: adminOperation(
        'sentRequests',
        'What was sent to a token: its last 200 requests to GA, newest first',
        { 200: json('The requests, newest first.', { type: 'object', properties: { requests: { type: 'array', items: ref('SentRequest') } }, required: ['requests'] }) },
        withId,
      ),
    },
    '/api/admin/failed': {
      get: adminOperation(
        'failedDeliveries',
        'The most recent deliveries GA refused for good',
        { 200: json('The newest failures and how many there are.', { type: 'object', properties: { total: int, items: { type: 'array', items: { type: 'object' } } }, required: ['total', 'items'] }) },
        { parameters: [{ name: 'limit', in: 'query', required: false, description: 'How many to list.', schema: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } }] },
      ),
    },
    '/api/admin/status': {
      get: adminOperation('status', 'The install (identity, version, outbox) and how deliveries to each token go', {
        200: json('Install and per-token delivery status.', { type: 'object', properties: { install: { type: 'object' }, tokens: { type: 'array', items: { type: 'object' } } }, required: ['install', 'tokens'] }),
      }),
    },
    '/api/admin/stats/run': {
      post: adminOperation('runDailyStats', 'Run the daily stats now', { 200: json('What the run did.', ref('DailyStatsRun')) }),
    },
  };
}

/** The document, the server URL left to each request (see {@link openApiRoutes}). */
export function openApiDocument(config: Pick<Config, 'appVersion'>): Omit<OpenApiDocument, 'servers'> {
  const bearer = (description: string) => ({ type: 'http' as const, scheme: 'bearer' as const, description });
  return {
    openapi: '3.1.1',
    info: {
      title: 'ga4-relay-analytics collector',
      version: config.appVersion,
      description: 'Opt-out usage analytics relayed to Google Analytics 4: page views from the browser snippet, task events and daily stats from the host, and the admin API. Errors answer `{"error": "…"}`.',
    },
    tags: [
      { name: 'collect', description: 'Page views from the browser snippet.' },
      { name: 'host', description: "The host application's events and numbers." },
      { name: 'admin', description: 'Token management and delivery status.' },
    ],
    paths: paths(),
    components: {
      schemas: {
        // The request bodies, generated from the very schemas the routes validate with.
        Hit: jsonSchemaOf(hitSchema),
        EventBody: jsonSchemaOf(eventBodySchema),
        HostStats: jsonSchemaOf(hostStatsSchema),
        NewToken: jsonSchemaOf(newTokenSchema),
        TokenPatch: jsonSchemaOf(tokenPatchSchema),
        Retry: jsonSchemaOf(retrySchema),
        ...RESPONSE_SCHEMAS,
      },
      responses: {
        Status400: errorResponse('The body or a parameter is invalid; `error` says what is wrong and where.'),
        Status401: errorResponse('The bearer credential is missing or wrong.', { 'WWW-Authenticate': { description: 'The bearer challenge.', schema: text } }),
        Status404: errorResponse('No such token; every admin route while ANALYTICS_ADMIN_TOKEN is unset; the events routes while ANALYTICS_EVENTS_KEY is unset.'),
        Status409: errorResponse('The token cannot be validated now (analytics disabled, or the relay skips the token).'),
        Status413: errorResponse(`The body is too large (/collect: ${MAX_HIT_BYTES} bytes; /api: ${MAX_EVENTS_BODY_BYTES}; /api/admin: ${MAX_ADMIN_BODY_BYTES}).`),
        Status429: errorResponse('Too many requests from this address (/collect), or too many wrong credentials.', RETRY_AFTER),
        Status503: errorResponse('The database is unavailable; try again later.', RETRY_AFTER),
      },
      securitySchemes: {
        adminToken: bearer('`Authorization: Bearer <ANALYTICS_ADMIN_TOKEN>`'),
        eventsKey: bearer('`Authorization: Bearer <ANALYTICS_EVENTS_KEY>`'),
      },
    },
  };
}

/** `GET /api/openapi.json` (no auth): the OpenAPI 3.1 description of the collector's HTTP API. */
export function openApiRoutes(config: Pick<Config, 'appVersion'>): Hono {
  const app = new Hono();
  const document = openApiDocument(config);
  app.get(OPENAPI_PATH, (c) => {
    // The collector's root as this request reached it: a host that mounts the app under `/analytics` gets
    // `/analytics`, so generated clients call the right paths. Path only: the host name is the client's to know.
    const root = c.req.path.slice(0, -OPENAPI_PATH.length);
    const body: OpenApiDocument = { ...document, servers: [{ url: root === '' ? '/' : root, description: 'this collector' }] };
    return c.json(body);
  });
  return app;
}
