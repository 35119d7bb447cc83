// The relay thread (see relay-thread.ts): the relay on a connection of its own, started by the delivery thread,
// so that its work (claims, GA's requests and answers, settlements) never holds up a group commit.
import { parentPort, workerData } from 'node:worker_threads';
import { systemClock } from '../core/clock.ts';
import { createMetrics } from '../core/metrics.ts';
import { openStore } from '../store/open-store.ts';
import type { Store } from '../store/store.ts';
import { Outbox } from './outbox.ts';
import { Relay } from './relay.ts';
import { errorOf, loggerTo, type FromThread, type RelayThreadData, type ToRelay } from './thread-messages.ts';

const port = parentPort;
if (!port) throw new Error('relay-worker.ts runs as a worker thread');
const say = (message: FromThread) => port.postMessage(message);
const log = loggerTo(port);

const { location, setup, writeLock } = workerData as RelayThreadData;
let store: Store;
try {
  store = await openStore(location, { max: 4, writeLock });
} catch (error) {
  say({ kind: 'failed', error: errorOf(error) });
  process.exit(1);
}

// Its counters are added to the main thread's at `/metrics`. The outbox's depth is the main thread's figure
// (this registry's stays 0, or it would be counted twice).
const metrics = createMetrics();
const outbox = new Outbox(store, metrics, systemClock, setup.config.outboxMax);
const relay = new Relay(
  { config: setup.config, store, identity: setup.identity, outbox, metrics, clock: systemClock, log, fetch: undefined, gaTimeoutMs: setup.gaTimeoutMs },
  setup.options,
);

async function relayOp(op: ToRelay['op'], args: unknown[]): Promise<unknown> {
  switch (op) {
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
}

port.on('message', (message: ToRelay) => {
  // Not answered.
  if (message.op === 'wake') return relay.wake();
  relayOp(message.op, message.args).then(
    (result) => say({ kind: 'answer', id: message.id, ok: true, result, trouble: undefined }),
    (error: unknown) => say({ kind: 'answer', id: message.id, ok: false, error: errorOf(error), trouble: undefined }),
  );
});

say({ kind: 'ready' });
