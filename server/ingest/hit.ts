import { HTTPException } from 'hono/http-exception';
import { z } from 'zod';
import { describeZodError, parseJsonBody } from '../core/http.ts';
import { MAX_LANGUAGE_LENGTH, MAX_TITLE_LENGTH, type PageViewHit } from '../../shared/wire.ts';

// Control characters never belong in a path, title or language; in a title they are cleaned to spaces.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;
// An e-mail address in a path or title is personal data: it is replaced before anything is stored.
// Parts are bounded (RFC 5321: local part ≤ 64, domain ≤ 255) so a hostile path cannot make matching quadratic.
const EMAIL = /[^\s/?#@%]{1,64}(?:@|%40)[^\s/?#@%]{1,255}\.[A-Za-z]{2,}/gi;
const LANGUAGE = /^[A-Za-z]{2,8}(?:-[A-Za-z0-9]{1,8})*$/;
const MAX_PATH_LENGTH = 2048;

export const hitSchema = z.object({
  path: z
    .string()
    .min(1)
    .max(MAX_PATH_LENGTH)
    // Patterns rather than refinements, so that the OpenAPI document (generated from this schema) says so too.
    .regex(/^\/(?!\/)/, 'must start with a single /')
    .regex(/^[^\u0000-\u001f\u007f]*$/, 'must not contain control characters'),
  title: z.string().max(MAX_TITLE_LENGTH).default(''),
  language: z
    .string()
    .max(MAX_LANGUAGE_LENGTH)
    .refine((language) => language === '' || LANGUAGE.test(language), 'must be a BCP 47 language tag')
    .default(''),
});

/**
 * Reads a `/collect` body into a clean hit, or throws a 400 saying what is wrong.
 * The query and fragment are dropped, e-mail addresses redacted, control characters in the title cleaned.
 * @example parseHit('{"path":"/a?x=1","title":"A","language":"en"}') // { path: '/a', title: 'A', language: 'en' }
 */
export function parseHit(body: string): PageViewHit {
  const result = hitSchema.safeParse(parseJsonBody(body, 'body must be JSON: {"path", "title", "language"}'));
  if (!result.success) throw new HTTPException(400, { message: describeZodError(result.error) });
  const { path, title, language } = result.data;
  return {
    path: redactEmails(path.replace(/[?#].*$/s, '')),
    title: redactEmails(title.replace(CONTROL, ' ').trim()),
    language,
  };
}

/** Replaces anything shaped like an e-mail address with `[email]`. */
export function redactEmails(text: string): string {
  // Most paths and titles have no @ at all: skip the pattern for them.
  if (!text.includes('@') && !/%40/i.test(text)) return text;
  return text.replace(EMAIL, '[email]');
}
