import { describe, expect, it } from 'vitest';
import { tokens } from '../../server/store/schema.ts';
import { ADMIN_TOKEN, api, makeAdminApp } from '../helpers/admin.ts';

describe('admin request limits', () => {
  it('refuses a login body over 64 KiB unread, before any session exists', async () => {
    const { app } = makeAdminApp();
    const res = await app.request('/admin/login', {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: `token=${'x'.repeat(100 * 1024)}`,
    });
    expect(res.status).toBe(413);
  });

  it('refuses an API body over 64 KiB and changes nothing', async () => {
    const { app, services } = makeAdminApp();
    const before = services.db.select().from(tokens).all();
    const res = await api(app, 'POST', '/tokens', { name: 'n'.repeat(100 * 1024), measurementId: 'G-BIG' });
    expect(res.status).toBe(413);
    expect(services.db.select().from(tokens).all()).toEqual(before);
  });

  it('reads the bearer token with surrounding blanks, and refuses a header of blanks', async () => {
    const { app } = makeAdminApp();
    const padded = await app.request('/api/admin/tokens', { headers: { Authorization: `Bearer   ${ADMIN_TOKEN}  ` } });
    expect(padded.status).toBe(200);
    const blanks = await app.request('/api/admin/tokens', { headers: { Authorization: `Bearer ${' '.repeat(16_000)}x ` } });
    expect(blanks.status).toBe(401);
  });
});
