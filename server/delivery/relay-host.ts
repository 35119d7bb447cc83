import { systemClock } from '../core/clock.ts';
import type { Logger } from '../core/log.ts';
import { createMetrics } from '../core/metrics.ts';
import type { Store } from '../store/store.ts';
import { Outbox } from './outbox.ts';
import { Relay } from './relay.ts';
import type { RelaySetup, ToRelay } from './thread-messages.ts';

/** A relay as the delivery thread drives it: in a thread of its own (relay-thread.ts) or, over a database in memory, in its own. */
export interface RelayHandle {
  op(op: ToRelay['op'], args?: unknown[]): Promise<unknown>;
  wake(): void;
  close(): Promise<void>;
  crashForTest(): Promise<unknown>;
}

/**
 * The relay over `store` in the calling thread, driven by operations. Its counters are added to the main thread's
 * at `/metrics`; the outbox's depth is the main thread's figure (this registry's stays 0, or it would count twice).
 */
export function hostRelay(store: Store, setup: RelaySetup, log: Logger): RelayHandle {
  const metrics = createMetrics();
  const outbox = new Outbox(store, metrics, systemClock, setup.config.outboxMax);
  const relay = new Relay(
    { config: setup.config, store, identity: setup.identity, outbox, metrics, clock: systemClock, log, fetch: undefined, gaTimeoutMs: setup.gaTimeoutMs },
    setup.options,
  );
  const op = async (name: ToRelay['op'], args: unknown[] = []): Promise<unknown> => {
    switch (name) {
      case 'start':
        return relay.start();
      case 'wake':
        return relay.wake();
      case 'stop':
        return relay.stop();
      case 'drain':
        return relay.drain();
      case 'retry':
        return relay.retryFailed(args[0] as number, args[1] as number[] | undefined);
      case 'metrics':
        return metrics.registry.getMetricsAsJSON();
    }
  };
  return {
    op,
    wake: () => relay.wake(),
    close: () => relay.stop(),
    crashForTest: () => Promise.reject(new Error('this relay runs in the delivery thread, not a thread of its own')),
  };
}
