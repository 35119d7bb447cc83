import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** How the fake answers `/mp/collect`: like GA, or failing in one of the ways GA and networks fail. */
export type FakeGaMode =
  | { kind: 'ok' }
  | { kind: 'status'; status: number; body?: string; headers?: Record<string, string> }
  /** Takes the request and never answers; switching to another mode resets the connection. */
  | { kind: 'hang' }
  /**
   * Takes every request, validation included, and never answers, as behind a firewall that drops packets:
   * the connection stays open even after a switch to another mode, until the client gives up (or `close()`).
   */
  | { kind: 'black-hole' }
  | { kind: 'reset' }
  /** Takes the request, then answers 204 only after `ms`. */
  | { kind: 'slow'; ms: number };

/** One request the fake received. */
export interface RecordedRequest {
  path: string;
  measurementId: string | null;
  apiSecret: string | null;
  /** The parsed JSON body, or undefined when it was not JSON. */
  body: MpBody | undefined;
  rawBody: string;
  /** What the fake answered: a status, or 'hang' / 'reset' / 'black-hole'. */
  answer: number | 'hang' | 'reset' | 'black-hole';
  /** When the request (head and body) had arrived, in ms since the epoch. */
  receivedAt: number;
  /** When the client closed the connection of a request never answered (gave up on it), if it did. */
  abandonedAt?: number;
}

/** A Measurement Protocol request body, as far as the fake reads it. */
export interface MpBody {
  client_id?: unknown;
  non_personalized_ads?: unknown;
  user_properties?: Record<string, { value?: unknown }>;
  device?: Record<string, unknown>;
  events?: Array<{ name?: unknown; timestamp_micros?: unknown; params?: Record<string, unknown> }>;
  [key: string]: unknown;
}

/** GA's answer on the validation endpoint. */
export interface ValidationMessage {
  fieldPath: string;
  description: string;
  validationCode: string;
}

/** An event GA accepted, with the request-level fields it came with. */
export interface DeliveredEvent {
  measurementId: string;
  clientId: string;
  appVersion: unknown;
  device: Record<string, unknown> | undefined;
  name: string;
  timestampMicros: unknown;
  params: Record<string, unknown>;
}

export interface FakeGa {
  /** Base URL to use as ANALYTICS_GA_URL. */
  url: string;
  requests: RecordedRequest[];
  /** Requests to `/mp/collect` that were answered 2xx. */
  accepted(): RecordedRequest[];
  /** Every event in an accepted `/mp/collect` request, flattened. */
  delivered(): DeliveredEvent[];
  setMode(mode: FakeGaMode): void;
  /** Resolves once `predicate` holds (checked every 20 ms), or rejects after `timeoutMs`. */
  waitFor(predicate: () => boolean, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

const NAME = /^[A-Za-z][A-Za-z0-9_]{0,39}$/;
const RESERVED_EVENTS = new Set([
  'ad_activeview', 'ad_click', 'ad_exposure', 'ad_query', 'ad_reward', 'adunit_exposure', 'app_background',
  'app_clear_data', 'app_exception', 'app_remove', 'app_store_refund', 'app_store_subscription_cancel',
  'app_store_subscription_convert', 'app_store_subscription_renew', 'app_update', 'app_upgrade',
  'dynamic_link_app_open', 'dynamic_link_app_update', 'dynamic_link_first_open', 'error', 'first_open',
  'first_visit', 'in_app_purchase', 'notification_dismiss', 'notification_foreground', 'notification_open',
  'notification_receive', 'os_update', 'session_start', 'session_start_with_rollout', 'user_engagement',
]);
const RESERVED_PREFIXES = ['_', 'firebase_', 'ga_', 'google_', 'gtag.'];
const LONG_PARAMS: Record<string, number> = { page_title: 300, page_location: 1000, page_referrer: 420 };
const MAX_BODY_BYTES = 130_000;
const MAX_AGE_MICROS = 72 * 3600 * 1_000_000;

/**
 * Checks a Measurement Protocol body against GA's documented limits, as `/debug/mp/collect` does.
 * @example validateMpBody({ client_id: 'x', events: [] }) // [{ fieldPath: 'events', ... }]
 */
export function validateMpBody(body: MpBody, rawBytes: number, nowMs: number = Date.now()): ValidationMessage[] {
  const messages: ValidationMessage[] = [];
  const add = (fieldPath: string, validationCode: string, description: string) =>
    messages.push({ fieldPath, validationCode, description });
  if (rawBytes >= MAX_BODY_BYTES) add('', 'VALUE_OUT_OF_BOUNDS', `Request body is ${rawBytes} bytes; the limit is 130kB.`);
  if (typeof body.client_id !== 'string' || body.client_id === '') {
    add('client_id', 'VALUE_REQUIRED', 'client_id is required and must be a string.');
  }
  const userProperties = body.user_properties ?? {};
  if (Object.keys(userProperties).length > 25) add('user_properties', 'EXCEEDED_MAX_ENTITIES', 'More than 25 user properties.');
  for (const [name, property] of Object.entries(userProperties)) {
    if (name.length > 24 || !NAME.test(name)) add(`user_properties.${name}`, 'NAME_INVALID', `User property name ${name} is invalid.`);
    const value = property?.value;
    if (typeof value === 'string' && value.length > 36) {
      add(`user_properties.${name}.value`, 'VALUE_OUT_OF_BOUNDS', `User property value is longer than 36 characters.`);
    }
  }
  const events = Array.isArray(body.events) ? body.events : [];
  if (events.length === 0) add('events', 'VALUE_REQUIRED', 'At least one event is required.');
  if (events.length > 25) add('events', 'EXCEEDED_MAX_ENTITIES', `A request can have at most 25 events, got ${events.length}.`);
  events.forEach((event, i) => {
    const name = typeof event.name === 'string' ? event.name : '';
    if (!NAME.test(name)) add(`events[${i}].name`, 'NAME_INVALID', `Event name ${JSON.stringify(event.name)} is invalid.`);
    else if (RESERVED_EVENTS.has(name) || RESERVED_PREFIXES.some((p) => name.startsWith(p))) {
      add(`events[${i}].name`, 'NAME_RESERVED', `Event name ${name} is reserved.`);
    }
    if (event.timestamp_micros !== undefined) {
      const micros = Number(event.timestamp_micros);
      if (!Number.isFinite(micros) || micros < nowMs * 1000 - MAX_AGE_MICROS || micros > nowMs * 1000 + 60_000_000) {
        add(`events[${i}].timestamp_micros`, 'VALUE_INVALID', 'Timestamp is more than 72 hours in the past or in the future.');
      }
    }
    const params = event.params ?? {};
    if (Object.keys(params).length > 25) add(`events[${i}].params`, 'EXCEEDED_MAX_ENTITIES', 'More than 25 parameters.');
    for (const [key, value] of Object.entries(params)) {
      if (!NAME.test(key)) add(`events[${i}].params.${key}`, 'NAME_INVALID', `Parameter name ${key} is invalid.`);
      const limit = LONG_PARAMS[key] ?? 100;
      if (typeof value === 'string' && value.length > limit) {
        add(`events[${i}].params.${key}`, 'VALUE_OUT_OF_BOUNDS', `Parameter ${key} is longer than ${limit} characters.`);
      }
      if (value !== null && typeof value === 'object') {
        add(`events[${i}].params.${key}`, 'VALUE_INVALID', `Parameter ${key} must be a string or a number.`);
      }
    }
  });
  return messages;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/**
 * Starts a stand-in for GA on 127.0.0.1: it records every request, answers `/mp/collect` with 204 and
 * `/debug/mp/collect` with `validationMessages`, and can be told to fail.
 */
export async function startFakeGa(): Promise<FakeGa> {
  const requests: RecordedRequest[] = [];
  const sockets = new Set<Socket>();
  const hanging = new Set<ServerResponse>();
  let mode: FakeGaMode = { kind: 'ok' };

  const server: Server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const rawBody = await readBody(req).catch(() => '');
    let body: MpBody | undefined;
    try {
      body = JSON.parse(rawBody) as MpBody;
    } catch {
      body = undefined;
    }
    const record: RecordedRequest = {
      path: url.pathname,
      measurementId: url.searchParams.get('measurement_id'),
      apiSecret: url.searchParams.get('api_secret'),
      body,
      rawBody,
      answer: 0,
      receivedAt: Date.now(),
    };
    requests.push(record);
    if (mode.kind === 'black-hole') {
      record.answer = 'black-hole';
      res.on('close', () => (record.abandonedAt = Date.now()));
      return;
    }
    if (req.method !== 'POST' || (url.pathname !== '/mp/collect' && url.pathname !== '/debug/mp/collect')) {
      record.answer = 404;
      res.writeHead(404).end();
      return;
    }
    if (url.pathname === '/debug/mp/collect') {
      const messages: ValidationMessage[] = body
        ? validateMpBody(body, Buffer.byteLength(rawBody))
        : [{ fieldPath: '', validationCode: 'VALUE_INVALID', description: 'Unable to parse the request body as JSON.' }];
      if (!record.measurementId) {
        messages.push({ fieldPath: 'measurement_id', validationCode: 'VALUE_REQUIRED', description: 'measurement_id is required.' });
      }
      record.answer = 200;
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ validationMessages: messages }));
      return;
    }
    switch (mode.kind) {
      case 'ok':
        record.answer = 204;
        res.writeHead(204).end();
        return;
      case 'status':
        record.answer = mode.status;
        res.writeHead(mode.status, { 'Content-Type': 'text/plain', ...mode.headers }).end(mode.body ?? '');
        return;
      case 'hang':
        record.answer = 'hang';
        hanging.add(res);
        return;
      case 'reset':
        record.answer = 'reset';
        req.socket.destroy();
        return;
      case 'slow':
        record.answer = 204;
        setTimeout(() => res.writeHead(204).end(), mode.ms);
        return;
    }
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  const accepted = () =>
    requests.filter((r) => r.path === '/mp/collect' && typeof r.answer === 'number' && r.answer >= 200 && r.answer < 300);

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    accepted,
    delivered() {
      return accepted().flatMap((r) =>
        (r.body?.events ?? []).map((event) => ({
          measurementId: r.measurementId ?? '',
          clientId: String(r.body?.client_id ?? ''),
          appVersion: r.body?.user_properties?.app_version?.value,
          device: r.body?.device,
          name: String(event.name),
          timestampMicros: event.timestamp_micros,
          params: event.params ?? {},
        })),
      );
    },
    setMode(next) {
      mode = next;
      if (next.kind !== 'hang') {
        for (const res of hanging) res.socket?.destroy();
        hanging.clear();
      }
    },
    async waitFor(predicate, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (!predicate()) {
        if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
