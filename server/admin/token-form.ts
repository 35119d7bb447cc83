import type { ZodError } from 'zod';
import { SWITCHES, type FeatureSwitch } from '../tokens/features.ts';
import type { Token } from '../tokens/tokens.ts';

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

/** What the token form shows: the stored token, or what was just submitted (never a secret). */
export type TokenFormValues = Record<FeatureSwitch, boolean> & {
  name: string;
  measurementId: string;
  /** One regular expression a line. */
  ignorePaths: string;
};

function switchesOf(on: (key: FeatureSwitch) => boolean): Record<FeatureSwitch, boolean> {
  return Object.fromEntries(SWITCHES.map((key) => [key, on(key)])) as Record<FeatureSwitch, boolean>;
}

/** The form values of a stored token. */
export function formValuesOf(token: Token): TokenFormValues {
  return { name: token.name, measurementId: token.measurementId, ignorePaths: token.ignorePaths.join('\n'), ...switchesOf((key) => token[key]) };
}

/** The form values as submitted, to show them back with their problems (the API secret is never shown back). */
export function formValuesFromFields(fields: Record<string, string>): TokenFormValues {
  return {
    name: fields.name ?? '',
    measurementId: fields.measurementId ?? '',
    ignorePaths: fields.ignorePaths ?? '',
    ...switchesOf((key) => fields[key] === 'on'),
  };
}

/** The form values of a token not yet added: every feature on, nothing ignored. */
export const NEW_TOKEN_VALUES: TokenFormValues = { name: '', measurementId: '', ignorePaths: '', ...switchesOf(() => true) };
