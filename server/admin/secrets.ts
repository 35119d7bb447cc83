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

const MASK = '••••';

/**
 * How a stored API secret is shown: never in full. Empty stays empty (the admin can tell "no secret");
 * long secrets keep their last two characters so two tokens can be told apart.
 * @example maskSecret('AbCdEfGhIjKlMn') // '••••Mn'
 */
export function maskSecret(secret: string): string {
  if (secret === '') return '';
  return secret.length >= 12 ? MASK + secret.slice(-2) : MASK;
}

/** True when `value` is what {@link maskSecret} shows for `secret` (a client sent a read back unchanged). */
export function isMaskOf(value: string, secret: string): boolean {
  return value !== '' && value === maskSecret(secret);
}

/**
 * `text` with every occurrence of `secret` blanked out, as it is and URL-encoded (GA may echo the request URL).
 * Applied before anything GA said is stored, so no page, API answer or log shows a secret, old or current.
 * @example redactSecret('bad api_secret=a%2Fb', 'a/b') // 'bad api_secret=••••'
 */
export function redactSecret(text: string, secret: string): string {
  if (secret === '') return text;
  let out = text;
  for (const form of new Set([secret, encodeURIComponent(secret), new URLSearchParams({ s: secret }).toString().slice(2)])) {
    out = out.split(form).join(MASK);
  }
  return out;
}
