import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/**
 * A key for one purpose, from the install's random signing secret and a hash of the admin token: whatever it
 * signs stops being valid as soon as the admin token changes, yet a signed value handed to a visitor cannot be
 * used to test guesses of the admin token offline (the random secret never leaves the database).
 */
export function deriveKey(signingSecret: string, adminToken: string, purpose: string): Buffer {
  const tokenHash = createHash('sha256').update(adminToken, 'utf8').digest('base64url');
  return createHmac('sha256', signingSecret).update(`analytics-admin:${purpose}:${tokenHash}`).digest();
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
