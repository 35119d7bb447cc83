import { describe, expect, it } from 'vitest';
import { DIALECTS, makeTestApp } from '../helpers/app.ts';

describe.each(DIALECTS)('GET /healthz (%s)', (database) => {
  it('answers 200 while the database answers, 503 once it is closed', async () => {
    const { app, services } = await makeTestApp({ database });
    const ok = await app.request('/healthz');
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ status: 'ok' });
    await services.store.close();
    const gone = await app.request('/healthz');
    expect(gone.status).toBe(503);
    expect(gone.headers.get('retry-after')).toMatch(/^\d+$/);
  });
});

describe('the app', () => {
  it('sends security headers and a JSON 404 for unknown routes', async () => {
    const { app, services } = await makeTestApp();
    const res = await app.request('/nothing-here');
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: 'not found' });
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    await services.store.close();
  });
});
