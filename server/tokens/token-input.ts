import { z } from 'zod';
import type { Token, TokenSettings } from '../store/types.ts';
import { isMaskOf, maskSecret } from '../core/secrets.ts';
import { compilePathPattern, ignorePathsTotalProblem, PATTERN_LIMITS, pathPatternProblem } from './ignore-paths.ts';

/**
 * A token as the admin API shows it: its settings and id, with `apiSecret` masked (e.g. `••••Mn`; `''` when no
 * secret is set), never in full.
 */
export type TokenJson = TokenSettings & { id: number };

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
  .max(PATTERN_LIMITS.length, `an ignore path is at most ${PATTERN_LIMITS.length} characters`)
  .superRefine((source, ctx) => {
    const problem = pathPatternProblem(source);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });

const ignorePaths = z
  .array(ignorePath)
  .max(MAX_IGNORE_PATHS, `at most ${MAX_IGNORE_PATHS} ignore paths`)
  .superRefine((sources, ctx) => {
    // Each one alone was checked above (and its verdict kept); here what they cost together, the valid ones only.
    const sizes = sources.filter((source) => pathPatternProblem(source) === undefined).map((source) => compilePathPattern(source).size);
    const problem = ignorePathsTotalProblem(sizes);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });

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

/** Checks a new token's body (throws a ZodError naming the bad field). */
export function parseNewToken(body: unknown): NewTokenInput {
  return newTokenSchema.parse(body);
}

/**
 * Checks a partial update against the stored token (throws a ZodError naming the bad field).
 * A masked secret sent back unchanged (a read, edited and sent back) keeps the stored secret; `id` may be
 * sent back as read, never changed.
 */
export function parseTokenPatch(body: unknown, current: Token): TokenPatch {
  if (body !== null && typeof body === 'object' && 'apiSecret' in body) {
    const { apiSecret, ...rest } = body as Record<string, unknown>;
    if (typeof apiSecret === 'string' && isMaskOf(apiSecret, current.apiSecret)) body = rest;
  }
  const sameId = tokenPatchSchema.refine((patch) => patch.id === undefined || patch.id === current.id, {
    path: ['id'],
    message: 'a token id cannot change',
  });
  const { id: _sameId, ...patch } = sameId.parse(body);
  return patch;
}

/** A token id from a URL segment: a positive integer, or undefined. */
export function parseTokenId(segment: string | undefined): number | undefined {
  if (segment === undefined || !/^[1-9]\d{0,14}$/.test(segment)) return undefined;
  return Number(segment);
}

