// The relay thread (see relay-thread.ts): the relay on a connection of its own, started by the delivery thread,
// so that its work (claims, GA's requests and answers, settlements) never holds up a group commit.
import { parentPort, workerData } from 'node:worker_threads';
import { openStore } from '../store/open-store.ts';
import type { Store } from '../store/store.ts';
import { hostRelay } from './relay-host.ts';
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

const relay = hostRelay(store, setup, log);

port.on('message', (message: ToRelay) => {
  // Not answered.
  if (message.op === 'wake') return relay.wake();
  relay.op(message.op, message.args).then(
    (result) => say({ kind: 'answer', id: message.id, ok: true, result, trouble: undefined }),
    (error: unknown) => say({ kind: 'answer', id: message.id, ok: false, error: errorOf(error), trouble: undefined }),
  );
});

say({ kind: 'ready' });
