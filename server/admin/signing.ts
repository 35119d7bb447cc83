import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * A key for one purpose, derived from the admin token with HMAC: whatever it signs stops being valid
 * as soon as the admin token changes, and the token itself is never used as a key directly.
 */
export function deriveKey(adminToken: string, purpose: string): Buffer {
  return createHmac('sha256', adminToken).update(`analytics-admin:${purpose}`).digest();
}

/** HMAC-SHA256 of `data` under `key`, base64url (safe in a form field and a cookie). */
export function sign(key: Buffer, data: string): string {
  return createHmac('sha256', key).update(data).digest('base64url');
}

/** True when `signature` is `sign(key, data)`, compared in constant time. */
export function verifySignature(key: Buffer, data: string, signature: string): boolean {
  const expected = Buffer.from(sign(key, data));
  const given = Buffer.from(signature);
  return given.length === expected.length && timingSafeEqual(given, expected);
}
