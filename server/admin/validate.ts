import { redactSecret } from '../core/secrets.ts';
import { clampParams, clampText, mpUrl, pageViewParams, type MpBody } from '../delivery/measurement-protocol.ts';
import { describeNetworkError, postToGa } from '../delivery/ga-client.ts';
import { deviceFromUserAgent } from '../ingest/device.ts';
import type { Services } from '../services.ts';
import { enabledFeatures, type Feature } from '../tokens/features.ts';
import { skipReason } from '../tokens/team-token.ts';
import type { Token } from '../store/types.ts';

/** One finding of GA's validation endpoint. */
export interface ValidationMessage {
  fieldPath: string;
  description: string;
  validationCode: string;
}

/** What GA's validation endpoint said about the sample of one feature. */
export interface ValidationResult {
  feature: Feature;
  /** Empty: GA found nothing wrong. */
  validationMessages: ValidationMessage[];
  /** Set when GA could not be asked or did not answer as expected. */
  error?: string;
}

// A common desktop browser, so the sample carries device fields as a real page view does.
const SAMPLE_USER_AGENT =
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36';
const MAX_MESSAGES = 50;

/** Why a token cannot be validated now (analytics disabled, or the relay skips it), or undefined. */
export function validationBlocker(services: Pick<Services, 'config'>, token: Token): string | undefined {
  // Full opt-out means nothing leaves the machine, not even a validation sample.
  if (services.config.disabled) return 'analytics is disabled (ANALYTICS_DISABLED); nothing is sent, not even a validation sample';
  const skipped = skipReason(token);
  if (skipped) return `the relay skips this token (${skipped}); fill in its measurement id and API secret first`;
  return undefined;
}

/** One sample request of `feature`, shaped exactly as the relay sends that feature. */
export function sampleBody(services: Pick<Services, 'config' | 'identity'>, feature: Feature, now: number): MpBody {
  const { config, identity } = services;
  const base = {
    client_id: identity.uuid,
    non_personalized_ads: true as const,
    user_properties: { app_version: { value: clampText(config.appVersion, 36) } },
  };
  const at = now * 1000;
  switch (feature) {
    case 'pageViews':
      return {
        ...base,
        device: deviceFromUserAgent(SAMPLE_USER_AGENT, 'en-US'),
        events: [
          {
            name: 'page_view',
            timestamp_micros: at,
            params: pageViewParams({ path: '/analytics-validation/', title: 'Analytics validation', language: 'en-US' }, config.pageOrigin, now),
          },
        ],
      };
    case 'taskEvents':
      return {
        ...base,
        events: [
          {
            name: 'task_event',
            timestamp_micros: at,
            params: clampParams({ namespace: 'analytics', task: 'validate', label: 'sample', result: 'success', value: 1 }),
          },
        ],
      };
    case 'dailyStats':
      return {
        ...base,
        events: [
          { name: 'daily_stats', timestamp_micros: at, params: { label: 'existence', value: 1 } },
          { name: 'installed_app', timestamp_micros: at, params: { label: 'analytics', value: 1 } },
        ],
      };
  }
}

/**
 * Sends one sample of each enabled feature to GA's `/debug/mp/collect` and returns what GA said.
 * The caller checks {@link validationBlocker} first. Never throws: a failure is reported per feature.
 */
export async function validateToken(services: Pick<Services, 'config' | 'identity' | 'fetch' | 'gaTimeoutMs' | 'clock'>, token: Token): Promise<ValidationResult[]> {
  const now = services.clock();
  const url = mpUrl(services.config.gaUrl, token, true);
  return Promise.all(
    enabledFeatures(token).map(async (feature): Promise<ValidationResult> => {
      try {
        const { status, text } = await postToGa(url, JSON.stringify(sampleBody(services, feature, now)), { timeoutMs: services.gaTimeoutMs, fetch: services.fetch });
        if (status < 200 || status >= 300) return { feature, validationMessages: [], error: `GA answered ${status}` };
        // GA's texts are shown to the admin: the secret is blanked in each, before anything is cut short.
        const messages = readValidationMessages(redactSecret(text, token.apiSecret), (field) => redactSecret(field, token.apiSecret));
        if (!messages) return { feature, validationMessages: [], error: 'GA answered without validationMessages' };
        return { feature, validationMessages: messages };
      } catch (error) {
        // Never the error itself: its message may carry the URL, and with it the API secret.
        return { feature, validationMessages: [], error: describeNetworkError(error) };
      }
    }),
  );
}

/**
 * GA's `validationMessages`, each field passed through `clean` and then cut to a readable length; undefined
 * when the answer has none.
 */
export function readValidationMessages(text: string, clean: (field: string) => string = (field) => field): ValidationMessage[] | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (parsed === null || typeof parsed !== 'object') return undefined;
  const list = (parsed as { validationMessages?: unknown }).validationMessages;
  if (!Array.isArray(list)) return undefined;
  const field = (value: unknown) => clampText(clean(typeof value === 'string' ? value : value === undefined ? '' : JSON.stringify(value)), 500);
  return list.slice(0, MAX_MESSAGES).map((item: unknown) => {
    const m = (item !== null && typeof item === 'object' ? item : {}) as Record<string, unknown>;
    return { fieldPath: field(m.fieldPath), description: field(m.description), validationCode: field(m.validationCode) };
  });
}
