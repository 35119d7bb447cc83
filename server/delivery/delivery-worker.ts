// The delivery thread (see delivery-thread.ts): the store's connection and the relay live here, so that neither a
// commit's sync nor the relay's work ever holds up the thread that answers HTTP. On SQLite it is the one
// connection of the process, so the relay and the hits never wait on each other's locks.
import { parentPort, workerData } from 'node:worker_threads';
import { systemClock } from '../core/clock.ts';
import type { Config } from '../core/config.ts';
import type { Logger } from '../core/log.ts';
import { createMetrics } from '../core/metrics.ts';
import { openStore } from '../store/open-store.ts';
import type { Store } from '../store/store.ts';
import type { Identity } from '../store/types.ts';
import { Outbox } from './outbox.ts';
import { Relay, type RelayOptions } from './relay.ts';

/** How the relay of the thread is set up, once the main thread knows the install. */
export interface RelaySetup {
  config: Config;
  identity: Identity;
  gaTimeoutMs: number;
  options: Omit<RelayOptions, 'random'>;
}

/** What the relay is asked to do. */
export type RelayOp = 'start' | 'wake' | 'stop' | 'drain' | 'retry' | 'metrics';

/** A message from the main thread. */
export type ToThread =
  | { kind: 'call'; id: number; method: keyof Store; args: unknown[] }
  | { kind: 'relay-setup'; setup: RelaySetup }
  | { kind: 'relay'; id: number; op: RelayOp; args: unknown[] }
  | { kind: 'close'; id: number };

/** A message to the main thread. */
export type FromThread =
  | { kind: 'ready' }
  | { kind: 'failed'; error: { name: string; message: string } }
  | { kind: 'answer'; id: number; ok: true; result: unknown; trouble: string | undefined }
  | { kind: 'answer'; id: number; ok: false; error: { name: string; message: string }; trouble: string | undefined }
  | { kind: 'log'; level: 'info' | 'warn' | 'error'; message: string };

const port = parentPort;
if (!port) throw new Error('delivery-worker.ts runs as a worker thread');
const say = (message: FromThread) => port.postMessage(message);
const errorOf = (error: unknown) => (error instanceof Error ? { name: error.name, message: error.message } : { name: 'Error', message: String(error) });

const log: Logger = {
  info: (message) => say({ kind: 'log', level: 'info', message }),
  warn: (message) => say({ kind: 'log', level: 'warn', message }),
  error: (message, error) => say({ kind: 'log', level: 'error', message: error instanceof Error ? `${message}: ${error.message}` : message }),
};

let store: Store;
try {
  store = await openStore((workerData as { location: string }).location, { max: 4 });
} catch (error) {
  say({ kind: 'failed', error: errorOf(error) });
  process.exit(1);
}

let relay: Relay | undefined;
let relayMetrics: ReturnType<typeof createMetrics> | undefined;

/** Builds the relay over this thread's store; its counters are added to the main thread's at `/metrics`. */
function setUpRelay(setup: RelaySetup): void {
  const metrics = createMetrics();
  // The outbox's depth is the main thread's figure (this registry's stays 0, or it would be counted twice).
  const outbox = new Outbox(store, metrics, systemClock, setup.config.outboxMax);
  relayMetrics = metrics;
  relay = new Relay(
    { config: setup.config, store, identity: setup.identity, outbox, metrics, clock: systemClock, log, fetch: undefined, gaTimeoutMs: setup.gaTimeoutMs },
    setup.options,
  );
}

async function relayOp(op: RelayOp, args: unknown[]): Promise<unknown> {
  if (!relay || !relayMetrics) throw new Error('the relay is not set up');
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
      return relayMetrics.registry.getMetricsAsJSON();
  }
}

port.on('message', (message: ToThread) => {
  if (message.kind === 'relay-setup') return setUpRelay(message.setup);
  // Not answered.
  if (message.kind === 'relay' && message.op === 'wake') return relay?.wake();
  void (async () => {
    try {
      let result: unknown;
      if (message.kind === 'call') {
        const method = store[message.method] as (...args: unknown[]) => unknown;
        result = await method.apply(store, message.args);
        // Events were written here: the relay of this thread delivers them (after its linger).
        if (message.method === 'enqueue') relay?.wake();
      } else if (message.kind === 'relay') {
        result = await relayOp(message.op, message.args);
      } else {
        await relay?.stop();
        await store.close();
      }
      say({ kind: 'answer', id: message.id, ok: true, result, trouble: store.trouble() });
    } catch (error) {
      say({ kind: 'answer', id: message.id, ok: false, error: errorOf(error), trouble: store.trouble() });
    }
  })();
});

say({ kind: 'ready' });
