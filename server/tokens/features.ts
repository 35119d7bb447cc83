/** The three things a token can receive, each switchable. */
export type Feature = 'pageViews' | 'taskEvents' | 'dailyStats';

/** A token's switch for a feature: its column, and its field in the admin's JSON and forms. */
export type FeatureSwitch = 'sendPageViews' | 'sendTaskEvents' | 'sendDailyStats';

/** One feature: its switch, what the admin calls it, and the GA event names that belong to it. */
export interface FeatureInfo {
  feature: Feature;
  switch: FeatureSwitch;
  label: string;
  events: readonly string[];
}

/** The one table of features; everything else derives from it. */
export const FEATURES: readonly FeatureInfo[] = [
  { feature: 'pageViews', switch: 'sendPageViews', label: 'Page views', events: ['page_view'] },
  { feature: 'taskEvents', switch: 'sendTaskEvents', label: 'Task events', events: ['task_event'] },
  { feature: 'dailyStats', switch: 'sendDailyStats', label: 'Daily stats', events: ['daily_stats', 'installed_app'] },
];

const BY_FEATURE = new Map(FEATURES.map((info) => [info.feature, info]));
const BY_EVENT = new Map(FEATURES.flatMap((info) => info.events.map((event) => [event, info.feature] as const)));

/** The switches, in the order the admin shows them. */
export const SWITCHES: readonly FeatureSwitch[] = FEATURES.map((info) => info.switch);

function infoOf(feature: Feature): FeatureInfo {
  return BY_FEATURE.get(feature) as FeatureInfo;
}

/**
 * The feature an outbox event belongs to, by its GA event name (anything unknown is a task event).
 * @example featureOfEvent('installed_app') // 'dailyStats'
 */
export function featureOfEvent(name: string): Feature {
  return BY_EVENT.get(name) ?? 'taskEvents';
}

/** Whether `token` has `feature` switched on. */
export function featureOn(token: Record<FeatureSwitch, boolean>, feature: Feature): boolean {
  return token[infoOf(feature).switch];
}

/** The features `token` has switched on, in table order. */
export function enabledFeatures(token: Record<FeatureSwitch, boolean>): Feature[] {
  return FEATURES.filter((info) => token[info.switch]).map((info) => info.feature);
}

/** What the admin calls a feature. */
export function featureLabel(feature: Feature): string {
  return infoOf(feature).label;
}

/** The main GA event name of a feature (its first): what a host's event of that feature is sent as. */
export function mainEventOf(feature: Feature): string {
  return infoOf(feature).events[0] as string;
}
