import UAParser from 'ua-parser-js';
import type { DeviceFields } from '../store/types.ts';
import { clampText } from '../delivery/measurement-protocol.ts';

const CACHE_LIMIT = 1000;
const cache = new Map<string, Omit<DeviceFields, 'language'>>();

/**
 * GA4's device fields from a User-Agent string (which itself is never sent) and the browser's language.
 * @example deviceFromUserAgent('Mozilla/5.0 (iPhone; ...) Mobile Safari...', 'en-GB').category // 'mobile'
 */
export function deviceFromUserAgent(userAgent: string, language: string): DeviceFields {
  let parsed = cache.get(userAgent);
  if (!parsed) {
    const result = new UAParser(userAgent).getResult();
    const type = result.device.type;
    parsed = {
      // GA's categories are desktop, mobile, tablet, smart TV; a UA without a device type is a desktop.
      category: type === 'mobile' || type === 'tablet' ? type : type === 'smarttv' ? 'smart TV' : 'desktop',
      ...optional('operating_system', result.os.name),
      ...optional('operating_system_version', result.os.version),
      ...optional('browser', result.browser.name),
      ...optional('browser_version', result.browser.version),
    };
    // Popular User-Agents repeat endlessly; parsing is the costly part, so keep recent answers.
    if (cache.size >= CACHE_LIMIT) cache.clear();
    cache.set(userAgent, parsed);
  }
  return { ...parsed, language };
}

function optional(key: string, value: string | undefined): Record<string, string> {
  return value ? { [key]: clampText(value, 100) } : {};
}
