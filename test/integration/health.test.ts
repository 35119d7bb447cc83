import { describe, expect, it } from 'vitest';
import { makeTestApp } from '../helpers/app.ts';

describe('GET /healthz', () => {
  it('answers 200 while the database answers, 503 once it is closed', async () => {
    const { app, services } = makeTestApp();
    const ok = await app.request('/healthz');
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ status: 'ok' });
    services.db.$client.close();
    expect((await app.request('/healthz')).status).toBe(503);
  });

  it('sends security headers and a JSON 404 for unknown routes', async () => {
    const { app } = makeTestApp();
    const res = await app.request('/nothing-here');
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: 'not found' });
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
  });
});
