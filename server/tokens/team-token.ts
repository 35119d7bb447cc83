import type { FirstToken } from '../store/types.ts';

/** The measurement id that stands for "not filled in yet". */
export const PLACEHOLDER_MEASUREMENT_ID = 'G-XXXXXXXXXX';

/**
 * The project team's GA4 property, preloaded as token 1 on every new install.
 * While these are the placeholder, the relay skips token 1 and the admin says so.
 */
export const TEAM_TOKEN: FirstToken = {
  name: 'Project team',
  measurementId: PLACEHOLDER_MEASUREMENT_ID,
  apiSecret: '',
  ignorePaths: ['^/admin/'],
  placeholderId: PLACEHOLDER_MEASUREMENT_ID,
};

/** Why a token cannot be sent to (the placeholder id, no API secret), or undefined when it can. */
export function skipReason(token: { measurementId: string; apiSecret: string }): string | undefined {
  if (token.measurementId === PLACEHOLDER_MEASUREMENT_ID) return 'placeholder measurement id';
  if (token.apiSecret === '') return 'no API secret';
  return undefined;
}
