import { describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, api, makeAdminApp } from '../helpers/admin.ts';

describe('admin request limits', () => {
  it('refuses a login body over 64 KiB unread, before any session exists', async () => {
    const { app } = await makeAdminApp();
    const res = await app.request('/admin/login', {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: `token=${'x'.repeat(100 * 1024)}`,
    });
    expect(res.status).toBe(413);
  });

  it('refuses an API body over 64 KiB and changes nothing', async () => {
    const { app, services } = await makeAdminApp();
    const before = await services.sql('SELECT * FROM tokens ORDER BY id');
    const res = await api(app, 'POST', '/tokens', { name: 'n'.repeat(100 * 1024), measurementId: 'G-BIG' });
    expect(res.status).toBe(413);
    expect(await services.sql('SELECT * FROM tokens ORDER BY id')).toEqual(before);
  });

  it('reads the bearer token with surrounding blanks, and refuses a header of blanks', async () => {
    const { app } = await makeAdminApp();
    const padded = await app.request('/api/admin/tokens', { headers: { Authorization: `Bearer   ${ADMIN_TOKEN}  ` } });
    expect(padded.status).toBe(200);
    const blanks = await app.request('/api/admin/tokens', { headers: { Authorization: `Bearer ${' '.repeat(16_000)}x ` } });
    expect(blanks.status).toBe(401);
  });
});
