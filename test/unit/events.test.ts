import { describe, expect, it, vi } from 'vitest';
import {
  analyticsEvent,
  checkText,
  errorClassName,
  InvalidEventError,
  OWN_NAMESPACE,
  taskEventOf,
  trackTask,
} from '../../server/host-events/task-events.ts';
import type { Logger } from '../../server/core/log.ts';
import type { EventParams } from '../../server/store/types.ts';
import { addTestToken, fakeClock, makeTestServices, outboxEvents, type TestServices } from '../helpers/app.ts';

/** The outbox's rows, oldest first, params and device read back from their JSON. */
async function queued(services: TestServices) {
  const rows = await outboxEvents(services);
  return rows.map((r) => ({
    tokenId: r.token_id,
    name: r.name,
    params: JSON.parse(r.params) as EventParams,
    device: r.device === null ? null : (JSON.parse(r.device) as unknown),
    occurredAt: r.occurred_at,
  }));
}

class QuotaExceededError extends Error {}

describe('taskEventOf', () => {
  it('builds a task_event with every parameter, defaults filled in', () => {
    expect(taskEventOf({ namespace: 'billing', task: 'send_invoices' })).toEqual({
      feature: 'taskEvents',
      name: 'task_event',
      params: { namespace: 'billing', task: 'send_invoices', label: '', result: '', value: 1 },
    });
  });

  it('sends booleans as 1/0 and keeps numbers as they are', () => {
    expect(taskEventOf({ namespace: 'a', task: 'b', value: true }).params.value).toBe(1);
    expect(taskEventOf({ namespace: 'a', task: 'b', value: false }).params.value).toBe(0);
    expect(taskEventOf({ namespace: 'a', task: 'b', value: 0 }).params.value).toBe(0);
    expect(taskEventOf({ namespace: 'a', task: 'b', value: 2.5 }).params.value).toBe(2.5);
  });

  it('makes a stats event a daily_stats event for tokens with daily stats on', () => {
    const event = taskEventOf({ namespace: 'a', task: 'b', label: 'queue', value: 7, eventType: 'stats' });
    expect(event.feature).toBe('dailyStats');
    expect(event.name).toBe('daily_stats');
  });

  it("cuts over-long fields at GA's 100-character limit", () => {
    const { params } = taskEventOf({ namespace: 'n'.repeat(150), task: 't'.repeat(101), label: 'l'.repeat(300), result: 'r'.repeat(100) });
    expect(params).toMatchObject({ namespace: 'n'.repeat(100), task: 't'.repeat(100), label: 'l'.repeat(100), result: 'r'.repeat(100) });
  });

  it.each([
    ['an empty namespace', { namespace: '', task: 't' }, 'namespace'],
    ['a blank task', { namespace: 'n', task: '   ' }, 'task'],
    ['a namespace that is not a string', { namespace: 42 as unknown as string, task: 't' }, 'namespace'],
    ['a missing task', { namespace: 'n' } as { namespace: string; task: string }, 'task'],
    ['a control character in the task', { namespace: 'n', task: 'a\nb' }, 'task'],
    ['a control character in the label', { namespace: 'n', task: 't', label: 'x\u0000' }, 'label'],
    ['a value that is not finite', { namespace: 'n', task: 't', value: Number.NaN }, 'value'],
    ['a value that is a string', { namespace: 'n', task: 't', value: '3' as unknown as number }, 'value'],
    ['an unknown event type', { namespace: 'n', task: 't', eventType: 'celery' as 'task' }, 'eventType'],
  ])('refuses %s with a named error', (_, options, field) => {
    const attempt = () => taskEventOf(options);
    expect(attempt).toThrow(InvalidEventError);
    try {
      attempt();
    } catch (error) {
      expect((error as InvalidEventError).field).toBe(field);
      expect((error as InvalidEventError).name).toBe('InvalidEventError');
    }
  });

  it('does not split a surrogate pair when cutting', () => {
    expect(checkText('label', `${'a'.repeat(99)}😀`, false)).toBe('a'.repeat(99));
  });
});

describe('analyticsEvent', () => {
  it('queues one event per token with task events on and returns the count', async () => {
    const services = await makeTestServices({ clock: fakeClock(Date.UTC(2026, 0, 1, 12)) });
    const a = await addTestToken(services);
    await addTestToken(services, { sendTaskEvents: false });
    const c = await addTestToken(services, { sendDailyStats: false, sendPageViews: false });
    expect(await analyticsEvent(services, { namespace: 'billing', task: 'send_invoices', value: 3 })).toBe(2);
    const rows = await queued(services);
    expect(rows.map((r) => r.tokenId).sort()).toEqual([a.id, c.id].sort());
    expect(rows[0]).toMatchObject({
      name: 'task_event',
      params: { namespace: 'billing', task: 'send_invoices', label: '', result: '', value: 3 },
      device: null,
      occurredAt: Date.UTC(2026, 0, 1, 12),
    });
  });

  it('queues a stats event only for tokens with daily stats on', async () => {
    const services = await makeTestServices();
    await addTestToken(services, { sendDailyStats: false });
    const b = await addTestToken(services, { sendTaskEvents: false });
    expect(await analyticsEvent(services, { namespace: 'a', task: 'b', eventType: 'stats' })).toBe(1);
    expect((await queued(services)).map((r) => r.tokenId)).toEqual([b.id]);
  });

  it('queues nothing for the placeholder token 1, which cannot receive', async () => {
    const services = await makeTestServices();
    expect(await analyticsEvent(services, { namespace: 'a', task: 'b' })).toBe(0);
    expect(await queued(services)).toEqual([]);
  });

  it('queues nothing at all when analytics is disabled, but still checks the call', async () => {
    const services = await makeTestServices({ config: { disabled: true } });
    await addTestToken(services);
    expect(await analyticsEvent(services, { namespace: 'a', task: 'b' })).toBe(0);
    expect(await queued(services)).toEqual([]);
    expect(() => analyticsEvent(services, { namespace: '', task: 'b' })).toThrow(InvalidEventError);
  });

  it('queues nothing when the call is invalid', async () => {
    const services = await makeTestServices();
    await addTestToken(services);
    expect(() => analyticsEvent(services, { namespace: 'a', task: '' })).toThrow(InvalidEventError);
    expect(await queued(services)).toEqual([]);
  });

  it('counts queued events in the metrics by event name', async () => {
    const services = await makeTestServices();
    await addTestToken(services);
    await addTestToken(services);
    await analyticsEvent(services, { namespace: 'a', task: 'b' });
    const metric = await services.metrics.eventsQueued.get();
    expect(metric.values).toEqual([expect.objectContaining({ labels: { type: 'task_event' }, value: 2 })]);
  });
});

describe('errorClassName', () => {
  it('names the class, never the message', () => {
    expect(errorClassName(new TypeError('alice@example.com not found'))).toBe('TypeError');
    expect(errorClassName(new QuotaExceededError('user 42'))).toBe('QuotaExceededError');
    expect(errorClassName('a thrown string')).toBe('NonErrorThrown');
    expect(errorClassName({ message: 'x' })).toBe('NonErrorThrown');
  });
});

describe('trackTask', () => {
  async function setup() {
    const services = await makeTestServices();
    await addTestToken(services);
    return services;
  }
  /** The params of the `count` reports queued (trackTask queues in the background: the job never waits for it). */
  async function params(services: TestServices, count: number) {
    await vi.waitFor(async () => expect(await queued(services)).toHaveLength(count));
    return (await queued(services)).map((r) => r.params);
  }
  /** Lets a report queued in the background (if any) reach the store. */
  const backgroundWrites = () => new Promise((resolve) => setTimeout(resolve, 20));

  it('reports a success with the returned number as value', async () => {
    const services = await setup();
    expect(await trackTask(services, 'jobs', 'cleanup', () => 17)).toBe(17);
    expect(await params(services, 1)).toEqual([{ namespace: 'jobs', task: 'cleanup', label: '', result: 'Success', value: 17 }]);
  });

  it('reports a value of 1 when the job returns something other than a number', async () => {
    const services = await setup();
    expect(await trackTask(services, 'jobs', 'sync', async () => ({ synced: true }))).toEqual({ synced: true });
    await trackTask(services, 'jobs', 'noop', () => undefined);
    expect((await params(services, 2)).map((p) => p.value)).toEqual([1, 1]);
  });

  it("reports a failure by the error's class name, not its message, and rethrows it", async () => {
    const services = await setup();
    const error = new QuotaExceededError('mailbox of alice@example.com is full');
    await expect(
      trackTask(services, 'mail', 'send', async () => {
        throw error;
      }),
    ).rejects.toBe(error);
    // A job that throws synchronously is reported the same way.
    await expect(
      trackTask(services, 'mail', 'send', () => {
        throw new RangeError('row 7 of bob');
      }),
    ).rejects.toThrow(RangeError);
    const sent = await params(services, 2);
    expect(sent.map((p) => p.result)).toEqual(['QuotaExceededError', 'RangeError']);
    expect(JSON.stringify(sent)).not.toMatch(/alice|bob/);
  });

  it('reports nothing about the analytics module itself', async () => {
    const services = await setup();
    expect(await trackTask(services, OWN_NAMESPACE, 'daily_stats', () => 5)).toBe(5);
    await expect(
      trackTask(services, `${OWN_NAMESPACE}.relay`, 'deliver', () => {
        throw new Error('x');
      }),
    ).rejects.toThrow('x');
    expect(await analyticsEvent(services, { namespace: OWN_NAMESPACE, task: 'relay' })).toBe(0);
    await backgroundWrites();
    expect(await queued(services)).toEqual([]);
  });

  it('refuses an invalid namespace before the job runs', async () => {
    const services = await setup();
    let ran = false;
    await expect(trackTask(services, '', 'job', () => (ran = true))).rejects.toThrow(InvalidEventError);
    expect(ran).toBe(false);
  });

  it('never breaks the job when the report cannot be queued', async () => {
    const errors: string[] = [];
    const log: Logger = { info() {}, warn() {}, error: (message) => errors.push(message) };
    const services = await makeTestServices({ log });
    await addTestToken(services);
    await services.sql('DROP TABLE outbox');
    expect(await trackTask(services, 'jobs', 'cleanup', () => 3)).toBe(3);
    // Reported in the background: the job's answer does not wait for the store.
    await vi.waitFor(() => expect(errors).toEqual(['could not queue the task event for jobs.cleanup']));
  });

  it('runs the job but sends nothing when analytics is disabled', async () => {
    const services = await makeTestServices({ config: { disabled: true } });
    await addTestToken(services);
    expect(await trackTask(services, 'jobs', 'cleanup', () => 2)).toBe(2);
    await backgroundWrites();
    expect(await queued(services)).toEqual([]);
  });
});
