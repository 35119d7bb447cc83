import { z, type ZodError } from 'zod';
import type { Token } from '../store/schema.ts';
import { maskSecret } from '../admin/secrets.ts';
import { pathPatternProblem } from './ignore-paths.ts';

/** A token as the admin API shows it: the API secret masked, never in full. */
export interface TokenJson {
  id: number;
  name: string;
  measurementId: string;
  /** Masked (e.g. `••••Mn`); `''` when no secret is set. */
  apiSecret: string;
  sendDailyStats: boolean;
  sendTaskEvents: boolean;
  sendPageViews: boolean;
  ignorePaths: string[];
}

/** The API shape of a stored token. */
export function tokenJson(token: Token): TokenJson {
  return {
    id: token.id,
    name: token.name,
    measurementId: token.measurementId,
    apiSecret: maskSecret(token.apiSecret),
    sendDailyStats: token.sendDailyStats,
    sendTaskEvents: token.sendTaskEvents,
    sendPageViews: token.sendPageViews,
    ignorePaths: [...token.ignorePaths],
  };
}

/** The most ignore paths one token may have (each one runs against every page view). */
export const MAX_IGNORE_PATHS = 50;

const name = z
  .string()
  .trim()
  .min(1, 'a name is required')
  .max(100, 'the name is at most 100 characters');

const measurementId = z
  .string()
  .trim()
  .max(32, 'the measurement id is at most 32 characters')
  .regex(/^G-[A-Z0-9]+$/i, 'the measurement id must be G- followed by letters and digits (e.g. G-AB12CD34EF)')
  .transform((id) => id.toUpperCase());

const apiSecret = z
  .string()
  .trim()
  .max(200, 'the API secret is at most 200 characters')
  // GA's own alphabet: a secret outside it is a paste error, and it could not be blanked reliably in GA's texts.
  .regex(/^[A-Za-z0-9_-]*$/, 'the API secret may hold only letters, digits, _ and - (as GA makes them)');

const ignorePath = z
  .string()
  .min(1, 'an ignore path cannot be empty')
  .max(500, 'an ignore path is at most 500 characters')
  .superRefine((source, ctx) => {
    const problem = pathPatternProblem(source);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });

const ignorePaths = z.array(ignorePath).max(MAX_IGNORE_PATHS, `at most ${MAX_IGNORE_PATHS} ignore paths`);

/** The body of a new token; unknown fields are refused (a misspelt switch must not pass silently). */
export const newTokenSchema = z.strictObject({
  name,
  measurementId,
  apiSecret: apiSecret.default(''),
  sendDailyStats: z.boolean().default(true),
  sendTaskEvents: z.boolean().default(true),
  sendPageViews: z.boolean().default(true),
  ignorePaths: ignorePaths.default([]),
});

/** A partial update; `id` may be sent back as read, and must then match. */
export const tokenPatchSchema = z.strictObject({
  id: z.number().int().optional(),
  name: name.optional(),
  measurementId: measurementId.optional(),
  apiSecret: apiSecret.optional(),
  sendDailyStats: z.boolean().optional(),
  sendTaskEvents: z.boolean().optional(),
  sendPageViews: z.boolean().optional(),
  ignorePaths: ignorePaths.optional(),
});

export type NewTokenInput = z.output<typeof newTokenSchema>;
export type TokenPatch = Omit<z.output<typeof tokenPatchSchema>, 'id'>;

/** The three switches, as form fields and JSON fields alike. */
export const SWITCHES = ['sendPageViews', 'sendTaskEvents', 'sendDailyStats'] as const;

/**
 * The token form's fields as the API's JSON body: ticked boxes are `true`, one ignore path a line.
 * On a change, a blank API secret keeps the stored one (unless "clear" is ticked).
 */
export function tokenBodyFromForm(fields: Record<string, string>, mode: 'add' | 'change'): Record<string, unknown> {
  const body: Record<string, unknown> = {
    name: fields.name ?? '',
    measurementId: fields.measurementId ?? '',
    ignorePaths: (fields.ignorePaths ?? '')
      .split(/\r?\n/)
      .map((line) => line.trim())
      .filter((line) => line !== ''),
  };
  for (const key of SWITCHES) body[key] = fields[key] === 'on';
  const secret = (fields.apiSecret ?? '').trim();
  if (mode === 'add' || secret !== '') body.apiSecret = secret;
  else if (fields.clearApiSecret === 'on') body.apiSecret = '';
  return body;
}

/** The first problem of each field, for showing next to it (`''` holds problems of the whole body). */
export function fieldErrors(error: ZodError): Record<string, string> {
  const errors: Record<string, string> = {};
  for (const issue of error.issues) {
    const key = typeof issue.path[0] === 'string' ? issue.path[0] : '';
    errors[key] ??= issue.message;
  }
  return errors;
}
