// The delivery thread (see delivery-thread.ts): the store's connection lives here, so that no commit's sync ever
// holds up the thread that answers HTTP. It starts the relay in a thread of its own (relay-thread.ts), with a
// connection of its own, so that the relay's work never holds up a group commit either. On SQLite the two
// connections share a write lock: a commit waiting behind the relay's claim goes the moment the claim is done.
import { parentPort, workerData } from 'node:worker_threads';
import { isPrivateToConnection } from '../store/location.ts';
import { openStore } from '../store/open-store.ts';
import { WriteLock } from '../store/sqlite/write-lock.ts';
import type { Store } from '../store/store.ts';
import { hostRelay, type RelayHandle } from './relay-host.ts';
import { RelayThread } from './relay-thread.ts';
import { errorOf, loggerTo, type FromThread, type RelayOp, type RelaySetup, type ToThread } from './thread-messages.ts';

const port = parentPort;
if (!port) throw new Error('delivery-worker.ts runs as a worker thread');
const say = (message: FromThread) => port.postMessage(message);
const log = loggerTo(port);

const { location } = workerData as { location: string };
const writeLock = new WriteLock();
let store: Store;
try {
  store = await openStore(location, { max: 4, writeLock: writeLock.buffer });
} catch (error) {
  say({ kind: 'failed', error: errorOf(error) });
  process.exit(1);
}

let relay: RelayHandle | undefined;

/** The relay's thread, on a connection of its own; over a database in memory (this connection's alone), this thread. */
function relayFor(setup: RelaySetup): RelayHandle {
  if (isPrivateToConnection(location)) return hostRelay(store, setup, log);
  return new RelayThread({ location, setup, writeLock: writeLock.buffer }, log);
}

async function relayOp(op: RelayOp, args: unknown[]): Promise<unknown> {
  if (!relay) throw new Error('the relay is not set up');
  if (op === 'crash') return relay.crashForTest();
  return relay.op(op, args);
}

port.on('message', (message: ToThread) => {
  if (message.kind === 'relay-setup') {
    // One relay a thread: the setup is the install's and does not change (it may come twice to a thread started
    // again while the collector set its relay up; two relays under one owner would take each other's leases).
    relay ??= relayFor(message.setup);
    return;
  }
  // Not answered.
  if (message.kind === 'relay' && message.op === 'wake') return relay?.wake();
  void (async () => {
    try {
      let result: unknown;
      if (message.kind === 'call') {
        const method = store[message.method] as (...args: unknown[]) => unknown;
        result = await method.apply(store, message.args);
        // Events were written here: the relay thread delivers them (after its linger).
        if (message.method === 'enqueue') relay?.wake();
      } else if (message.kind === 'relay') {
        result = await relayOp(message.op, message.args);
      } else {
        await relay?.close();
        await store.close();
      }
      say({ kind: 'answer', id: message.id, ok: true, result, trouble: store.trouble() });
    } catch (error) {
      say({ kind: 'answer', id: message.id, ok: false, error: errorOf(error), trouble: store.trouble() });
    }
  })();
});

say({ kind: 'ready' });
