/** What a hidden secret is shown as. */
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
