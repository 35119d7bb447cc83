import { z } from 'zod';
import type { Clock } from '../core/clock.ts';
import type { Config } from '../core/config.ts';
import type { Logger } from '../core/log.ts';
import { clampText, GA_LIMITS } from '../delivery/measurement-protocol.ts';
import type { NewEvent, Outbox } from '../delivery/outbox.ts';
import type { EventParams } from '../store/types.ts';
import { mainEventOf, type Feature } from '../tokens/features.ts';
import type { Tokens } from '../tokens/tokens.ts';

/** What queueing a host's events needs: who receives them, and the outbox. */
export interface HostEventDeps {
  config: Pick<Config, 'disabled'>;
  tokens: Pick<Tokens, 'recipients'>;
  outbox: Pick<Outbox, 'add'>;
  clock: Clock;
  log: Logger;
}

/** Which switch of a token an event needs: task events, or daily stats. */
export type EventType = 'task' | 'stats';

/** What a host reports about one piece of its work (the seed's `analytics_event`). */
export interface AnalyticsEventOptions {
  /** Where the work lives, e.g. `billing.invoices`. Required. */
  namespace: string;
  /** The work's name, e.g. `send_reminders`. Required. */
  task: string;
  label?: string;
  /** `Success`, or the class name of what went wrong. */
  result?: string;
  /** A context number (e.g. how many rows a bulk job touched) or a yes/no (sent as 1/0). */
  value?: number | boolean;
  eventType?: EventType;
}

/** The namespace of this module's own work; {@link trackTask} never reports it (no feedback loop). */
export const OWN_NAMESPACE = 'ga4-relay-analytics';

/** An event that cannot be sent as asked (a missing namespace, control characters, …); `field` names the culprit. */
export class InvalidEventError extends Error {
  override name = 'InvalidEventError';
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

const FEATURE: Record<EventType, Feature> = { task: 'taskEvents', stats: 'dailyStats' };
// C0 and C1 controls: they have no place in a report and usually mean the caller passed the wrong thing.
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * A required text of a host's report (namespace, task, an installed app's name) in the HTTP routes' schemas:
 * what {@link checkText} refuses, said in the schema too, so that the OpenAPI document generated from it says it.
 */
export const requiredHostText = z
  .string()
  .min(1, 'must not be empty')
  .regex(new RegExp(`^[^${CONTROL_CHARACTERS.source.slice(1, -1)}]*$`), 'must not contain control characters');

/**
 * A text field within GA's limits: must be a string without control characters (and not blank when
 * `required`); over-long text is cut at GA's value length rather than refused.
 * @example checkText('task', 'x'.repeat(150), true).length // 100
 */
export function checkText(field: string, value: unknown, required: boolean): string {
  if (typeof value !== 'string') throw new InvalidEventError(field, `must be a string (got ${typeof value})`);
  if (required && value.trim() === '') throw new InvalidEventError(field, 'must not be empty');
  if (CONTROL_CHARACTERS.test(value)) throw new InvalidEventError(field, 'must not contain control characters');
  return clampText(value, GA_LIMITS.valueLength);
}

/**
 * An event's value as GA takes it: a finite number, or a boolean as 1/0.
 * @example checkValue(true) // 1
 */
export function checkValue(value: unknown): number {
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new InvalidEventError('value', 'must be a finite number or a boolean');
  }
  return value;
}

/**
 * The GA event name, parameters and token switch for a host's event; throws {@link InvalidEventError}.
 * @example taskEventOf({ namespace: 'jobs', task: 'cleanup', value: false }).params.value // 0
 */
export function taskEventOf(options: AnalyticsEventOptions): { feature: Feature; name: string; params: EventParams } {
  const eventType = options.eventType ?? 'task';
  if (eventType !== 'task' && eventType !== 'stats') {
    throw new InvalidEventError('eventType', 'must be "task" or "stats"');
  }
  return {
    feature: FEATURE[eventType],
    name: mainEventOf(FEATURE[eventType]),
    params: {
      namespace: checkText('namespace', options.namespace, true),
      task: checkText('task', options.task, true),
      label: checkText('label', options.label ?? '', false),
      result: checkText('result', options.result ?? '', false),
      value: checkValue(options.value ?? 1),
    },
  };
}

/**
 * One outbox event per token that has `feature` on and can be sent to; none when analytics is disabled.
 * Every event is stamped with the same moment (services.clock()).
 */
export function eventsForRecipients(
  services: HostEventDeps,
  feature: Feature,
  events: Array<{ name: string; params: EventParams }>,
  occurredAt: number = services.clock(),
): NewEvent[] {
  if (services.config.disabled || events.length === 0) return [];
  return services.tokens
    .recipients(feature)
    .flatMap(({ token }) => events.map((event) => ({ tokenId: token.id, name: event.name, params: event.params, occurredAt })));
}

/**
 * The outbox events for a host's event, one per recipient token (to queue with `outbox.add`).
 * Throws {@link InvalidEventError} before anything is queued.
 */
export function analyticsEvents(services: HostEventDeps, options: AnalyticsEventOptions): NewEvent[] {
  const { feature, name, params } = taskEventOf(options);
  // The module's own work is never reported, however it is asked: that would feed back on itself.
  if (isOwnWork(options.namespace)) return [];
  return eventsForRecipients(services, feature, [{ name, params }]);
}

/**
 * Queues one event for each token whose matching switch is on and resolves with how many once they are
 * stored; 0 when disabled. Throws {@link InvalidEventError} at once for an event that cannot be sent.
 * @example await analyticsEvent(services, { namespace: 'billing', task: 'send_invoices', value: 12 }) // 1 with one token
 */
export function analyticsEvent(services: HostEventDeps, options: AnalyticsEventOptions): Promise<number> {
  const events = analyticsEvents(services, options);
  return services.outbox.add(events).then(() => events.length);
}

/**
 * The class name of a thrown value, never its message (messages carry personal data).
 * @example errorClassName(new TypeError('user bob@example.com')) // 'TypeError'
 */
export function errorClassName(thrown: unknown): string {
  if (!(thrown instanceof Error)) return 'NonErrorThrown';
  const className = thrown.constructor.name;
  return className !== '' && className !== 'Object' ? className : 'Error';
}

/**
 * Runs `fn` and reports it as a task event: `Success` with the returned number as value (else 1), or the
 * thrown error's class name, after which the error is rethrown. Reporting never breaks the job.
 * @example const removed = await trackTask(services, 'jobs', 'cleanup', () => cleanup());
 */
export async function trackTask<T>(services: HostEventDeps, namespace: string, task: string, fn: () => T | Promise<T>): Promise<T> {
  // Checked before the job runs: a misspelt call fails on its first use rather than never reporting.
  checkText('namespace', namespace, true);
  checkText('task', task, true);
  // Reporting never breaks or delays the job: queued in the background, a failure logged.
  const report = (result: string, value: number) => {
    if (isOwnWork(namespace)) return;
    const failed = (error: unknown) => services.log.error(`could not queue the task event for ${namespace}.${task}`, error);
    try {
      analyticsEvent(services, { namespace, task, result, value }).catch(failed);
    } catch (error) {
      failed(error);
    }
  };
  let outcome: T;
  try {
    outcome = await fn();
  } catch (error) {
    report(errorClassName(error), 1);
    throw error;
  }
  report('Success', typeof outcome === 'number' && Number.isFinite(outcome) ? outcome : 1);
  return outcome;
}

function isOwnWork(namespace: string): boolean {
  return namespace === OWN_NAMESPACE || namespace.startsWith(`${OWN_NAMESPACE}.`);
}
