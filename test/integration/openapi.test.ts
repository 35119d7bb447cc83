import { Validator } from '@seriousme/openapi-schema-validator';
import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { OPENAPI_PATH, type OpenApiDocument } from '../../server/admin/openapi.ts';
import { ADMIN_TOKEN } from '../helpers/admin.ts';
import { addTestToken, makeTestApp } from '../helpers/app.ts';

const EVENTS_KEY = 'events-key-for-tests-0123456789';
const CREDENTIALS: Record<string, string> = { adminToken: ADMIN_TOKEN, eventsKey: EVENTS_KEY };
const BROWSER = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36';

type Operation = OpenApiDocument['paths'][string][string];
interface Described {
  path: string;
  method: string;
  op: Operation;
}

// GA's validation endpoint, answered here: `validate` must not reach the network.
const gaFindsNothing: typeof fetch = async () => new Response(JSON.stringify({ validationMessages: [] }), { status: 200 });

/** An app with the admin and the events routes on, a token that can be validated, and its served document. */
async function setup(): Promise<{ app: Hono; doc: OpenApiDocument; raw: unknown; tokenId: number; res: Response }> {
  const { app, services } = await makeTestApp({ config: { adminToken: ADMIN_TOKEN, eventsKey: EVENTS_KEY }, fetch: gaFindsNothing });
  const token = await addTestToken(services);
  const res = await app.request('/api/openapi.json');
  const raw: unknown = await res.clone().json();
  return { app, doc: raw as OpenApiDocument, raw, tokenId: token.id, res };
}

/** Every operation of the document; deletes last, so the token the others use is still there for them. */
function operationsOf(doc: OpenApiDocument): Described[] {
  const all = Object.entries(doc.paths).flatMap(([path, item]) => Object.entries(item).map(([method, op]) => ({ path, method, op })));
  return all.sort((a, b) => Number(a.method === 'delete') - Number(b.method === 'delete'));
}

/** Calls an operation as a client of the document would: its credential, its first media type, `body` if given. */
function call(app: Hono, described: Described, tokenId: number, body?: unknown): Promise<Response> {
  const { path, method, op } = described;
  const headers: Record<string, string> = { 'user-agent': BROWSER };
  const scheme = Object.keys(op.security[0] ?? {})[0];
  if (scheme !== undefined) headers.authorization = `Bearer ${CREDENTIALS[scheme]}`;
  const mediaType = Object.keys(op.requestBody?.content ?? {})[0];
  if (mediaType !== undefined && body !== undefined) headers['content-type'] = mediaType;
  const url = path.replace('{id}', String(tokenId));
  return Promise.resolve(app.request(url, { method: method.toUpperCase(), headers, body: body === undefined ? undefined : JSON.stringify(body) }));
}

/** The example and the (component) schema of an operation's request body, if it has one. */
function bodyOf(doc: OpenApiDocument, op: Operation): { example: unknown; schema: { required?: string[]; additionalProperties?: unknown } } | undefined {
  const media = Object.values(op.requestBody?.content ?? {})[0];
  if (!media) return undefined;
  const name = String(media.schema.$ref).replace('#/components/schemas/', '');
  return { example: media.example, schema: doc.components.schemas[name] as { required?: string[]; additionalProperties?: unknown } };
}

describe('GET /api/openapi.json', () => {
  it('serves a valid OpenAPI 3.1 document to anyone, with the app-wide security headers', async () => {
    const { raw, doc, res } = await setup();
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('content-security-policy')).toContain("default-src 'none'");

    const validator = new Validator();
    const result = await validator.validate(structuredClone(raw) as Record<string, unknown>);
    expect(result.errors).toBeUndefined();
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');

    expect(doc.servers).toEqual([{ url: '/', description: 'this collector' }]);
    expect(doc.components.securitySchemes).toMatchObject({ adminToken: { type: 'http', scheme: 'bearer' }, eventsKey: { type: 'http', scheme: 'bearer' } });
    expect(doc.paths['/collect']?.post?.security).toEqual([]);
    expect(doc.paths['/api/events']?.post?.security).toEqual([{ eventsKey: [] }]);
    expect(doc.paths['/api/admin/tokens/{id}/sent']?.get?.security).toEqual([{ adminToken: [] }]);
    // Each refusal answers the one error shape.
    for (const response of Object.values(doc.components.responses)) {
      expect(response.content?.['application/json']?.schema).toEqual({ $ref: '#/components/schemas/Error' });
    }
  });

  it('describes exactly the JSON routes the app has', async () => {
    const { app, doc } = await setup();
    const described = operationsOf(doc).map(({ path, method }) => `${method.toUpperCase()} ${path}`);
    const routed = app.routes
      // A CORS preflight (OPTIONS /collect) is answered by hono's cors, not a JSON route to describe.
      .filter((route) => route.method !== 'ALL' && route.method !== 'OPTIONS' && (route.path === '/collect' || route.path.startsWith('/api/')) && route.path !== OPENAPI_PATH)
      .map((route) => `${route.method} ${route.path.replace(/:(\w+)/g, '{$1}')}`);
    expect([...new Set(described)].sort()).toEqual([...new Set(routed)].sort());
    expect(described).toEqual(
      expect.arrayContaining(['POST /collect', 'POST /api/events', 'PUT /api/stats', 'GET /api/admin/tokens/{id}/sent', 'POST /api/admin/tokens/{id}/retry']),
    );
  });

  it('answers every described operation, with a status it documents, and accepts each example body', async () => {
    const { app, doc, tokenId } = await setup();
    const examples: string[] = [];
    for (const described of operationsOf(doc)) {
      const body = bodyOf(doc, described.op);
      if (body) {
        expect(body.example, `${described.method} ${described.path} has an example`).toBeDefined();
        examples.push(described.path);
      }
      const res = await call(app, described, tokenId, body?.example);
      const what = `${described.method.toUpperCase()} ${described.path} → ${res.status} ${await res.clone().text()}`;
      expect([404, 405], what).not.toContain(res.status);
      expect(res.status, what).toBeGreaterThanOrEqual(200);
      expect(res.status, what).toBeLessThan(300);
      expect(Object.keys(described.op.responses), what).toContain(String(res.status));
    }
    expect(examples).toHaveLength(6);
  });

  it('refuses, with {error}, an example that lacks a field its schema requires or has one it does not know', async () => {
    const { app, doc, tokenId } = await setup();
    let checked = 0;
    for (const described of operationsOf(doc)) {
      const body = bodyOf(doc, described.op);
      if (!body) continue;
      const example = body.example as Record<string, unknown>;
      const wrong = (body.schema.required ?? []).map((field) => Object.fromEntries(Object.entries(example).filter(([key]) => key !== field)));
      if (body.schema.additionalProperties === false) wrong.push({ ...example, notAField: 1 });
      for (const bad of wrong) {
        const res = await call(app, described, tokenId, bad);
        expect(res.status, `${described.method} ${described.path} ${JSON.stringify(bad)}`).toBe(400);
        expect(((await res.json()) as { error: unknown }).error).toEqual(expect.any(String));
        checked += 1;
      }
    }
    expect(checked).toBeGreaterThanOrEqual(10);
  });

  it('describes the case-insensitive measurement id as the route accepts it', async () => {
    const { doc } = await setup();
    const schema = doc.components.schemas.NewToken as { properties: Record<string, { pattern?: string }> };
    const pattern = new RegExp(schema.properties.measurementId?.pattern ?? '(?!)');
    expect(['G-AB12CD', 'g-ab12cd'].map((id) => pattern.test(id))).toEqual([true, true]);
    expect(pattern.test('UA-1234')).toBe(false);
  });

  it('says what the routes refuse in text fields, so that a client built from it sends nothing they refuse', async () => {
    const { app, doc } = await setup();
    type TextSchema = { minLength?: number; maxLength?: number; pattern?: string; allOf?: Array<{ pattern?: string }> };
    const fits = (value: string, schema: TextSchema) =>
      value.length >= (schema.minLength ?? 0) &&
      value.length <= (schema.maxLength ?? Infinity) &&
      [schema.pattern, ...(schema.allOf ?? []).map((part) => part.pattern)].every((pattern) => pattern === undefined || new RegExp(pattern, 'u').test(value));
    const property = (component: string, name: string) =>
      (doc.components.schemas[component] as { properties: Record<string, TextSchema & { items?: TextSchema }> }).properties[name] as TextSchema & { items?: TextSchema };
    const cases: Array<[string, TextSchema, string, () => Promise<Response>]> = [];
    const post = (path: string, method: string, body: unknown, headers: Record<string, string>) => () =>
      Promise.resolve(app.request(path, { method, headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) }));
    const events = { authorization: `Bearer ${EVENTS_KEY}` };
    for (const bad of ['', 'a\nb', 'bell\u0007']) {
      cases.push([`EventBody.namespace ${JSON.stringify(bad)}`, property('EventBody', 'namespace'), bad, post('/api/events', 'POST', { namespace: bad, task: 't' }, events)]);
      cases.push([`EventBody.task ${JSON.stringify(bad)}`, property('EventBody', 'task'), bad, post('/api/events', 'POST', { namespace: 'n', task: bad }, events)]);
      cases.push([`HostStats.apps[] ${JSON.stringify(bad)}`, property('HostStats', 'apps').items as TextSchema, bad, post('/api/stats', 'PUT', { users: 1, tokens: 1, apps: [bad] }, events)]);
    }
    for (const bad of ['no-slash', '//host.example/x', '/a\u0000b']) {
      cases.push([`Hit.path ${JSON.stringify(bad)}`, property('Hit', 'path'), bad, post('/collect', 'POST', { path: bad, title: 't', language: 'en' }, { 'user-agent': BROWSER })]);
    }
    for (const [what, schema, value, send] of cases) {
      expect(fits(value, schema), `the document refuses ${what}`).toBe(false);
      expect((await send()).status, `the route refuses ${what}`).toBe(400);
    }
    // And what the routes take, the document takes.
    expect(fits('billing.invoices', property('EventBody', 'namespace'))).toBe(true);
    expect(fits('forum', property('HostStats', 'apps').items as TextSchema)).toBe(true);
    expect(fits('/docs/getting-started', property('Hit', 'path'))).toBe(true);
  });

  it('names the mount prefix as the server when a host mounts the app under one', async () => {
    const { app, tokenId } = await setup();
    const host = new Hono();
    host.route('/analytics', app);
    const res = await host.request('/analytics/api/openapi.json');
    expect(res.status).toBe(200);
    const doc = (await res.json()) as OpenApiDocument;
    const server = doc.servers[0]?.url ?? '';
    expect(server).toBe('/analytics');
    const read = await host.request(`${server}/api/admin/tokens/${tokenId}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(read.status).toBe(200);
  });
});
