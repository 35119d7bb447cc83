// The SQLite store in a thread of its own (see worker-store.ts): its commits, and the fsync that makes each one
// durable, never block the thread that answers HTTP. One message a call; the answer says whether writes work.
import { parentPort, workerData } from 'node:worker_threads';
import { sqlStore } from '../sql-store.ts';
import type { Store } from '../store.ts';
import { openSqlite } from './sqlite-driver.ts';

/** A call from the main thread: a method of the store and its arguments. */
export interface WorkerCall {
  id: number;
  method: keyof Store;
  args: unknown[];
}

/** The answer to a call, with the store's write trouble (if any) after it. */
export type WorkerAnswer =
  | { id: number; ok: true; result: unknown; trouble: string | undefined }
  | { id: number; ok: false; error: { name: string; message: string }; trouble: string | undefined };

/** What the thread says first: ready, or why it could not open the database. */
export type WorkerHello = { ready: true } | { ready: false; error: { name: string; message: string } };

const port = parentPort;
if (!port) throw new Error('store-worker.ts runs as a worker thread');
const { location } = workerData as { location: string };

let store: Store;
try {
  store = sqlStore(openSqlite(location));
  port.postMessage({ ready: true } satisfies WorkerHello);
} catch (error) {
  const { name, message } = error instanceof Error ? error : new Error(String(error));
  port.postMessage({ ready: false, error: { name, message } } satisfies WorkerHello);
  process.exit(1);
}

port.on('message', (call: WorkerCall) => {
  void (async () => {
    let answer: WorkerAnswer;
    try {
      const method = store[call.method] as (...args: unknown[]) => unknown;
      const result = await method.apply(store, call.args);
      answer = { id: call.id, ok: true, result, trouble: store.trouble() };
    } catch (error) {
      const { name, message } = error instanceof Error ? error : new Error(String(error));
      answer = { id: call.id, ok: false, error: { name, message }, trouble: store.trouble() };
    }
    port.postMessage(answer);
  })();
});
