import { isbot } from 'isbot';
import UAParser from 'ua-parser-js';
import { clampText } from '../delivery/measurement-protocol.ts';
import type { DeviceFields } from '../store/types.ts';

const CACHE_LIMIT = 1000;

/** What a User-Agent tells: whether it is a bot, and GA's device fields for a browser's language. */
interface Verdict {
  bot: boolean;
  /** Shared by every hit with the same User-Agent and language: never changed after it is made. */
  devices: Map<string, DeviceFields>;
  parsed: Omit<DeviceFields, 'language'>;
}

const cache = new Map<string, Verdict>();

function verdictOf(userAgent: string): Verdict {
  let verdict = cache.get(userAgent);
  if (!verdict) {
    const result = new UAParser(userAgent).getResult();
    const type = result.device.type;
    verdict = {
      bot: userAgent === '' || isbot(userAgent),
      devices: new Map(),
      parsed: {
        // GA's categories are desktop, mobile, tablet, smart TV; a UA without a device type is a desktop.
        category: type === 'mobile' || type === 'tablet' ? type : type === 'smarttv' ? 'smart TV' : 'desktop',
        ...optional('operating_system', result.os.name),
        ...optional('operating_system_version', result.os.version),
        ...optional('browser', result.browser.name),
        ...optional('browser_version', result.browser.version),
      },
    };
    // Popular User-Agents repeat endlessly; the patterns are the costly part, so keep recent answers.
    if (cache.size >= CACHE_LIMIT) cache.clear();
    cache.set(userAgent, verdict);
  }
  return verdict;
}

/** True when the User-Agent is a crawler, a script or a headless browser (or missing). */
export function isBot(userAgent: string): boolean {
  return verdictOf(userAgent).bot;
}

/**
 * GA4's device fields from a User-Agent string (which itself is never sent) and the browser's language. The same
 * object comes back for the same two, so the events of many hits share it (it is serialised once).
 * @example deviceFromUserAgent('Mozilla/5.0 (iPhone; ...) Mobile Safari...', 'en-GB').category // 'mobile'
 */
export function deviceFromUserAgent(userAgent: string, language: string): DeviceFields {
  const verdict = verdictOf(userAgent);
  let device = verdict.devices.get(language);
  if (!device) {
    if (verdict.devices.size >= 16) verdict.devices.clear();
    device = Object.freeze({ ...verdict.parsed, language });
    verdict.devices.set(language, device);
  }
  return device;
}

function optional(key: string, value: string | undefined): Record<string, string> {
  return value ? { [key]: clampText(value, 100) } : {};
}
