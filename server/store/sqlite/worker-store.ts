import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { DatabaseError, StoreUnavailableError } from '../errors.ts';
import type { Store } from '../store.ts';
import type { WorkerAnswer, WorkerCall, WorkerHello } from './store-worker.ts';

/** The thread's own file, as this one is run: TypeScript under tsx, JavaScript once compiled. */
const WORKER_URL = new URL(`./store-worker${extname(fileURLToPath(import.meta.url))}`, import.meta.url);
/** How long a restart waits after the thread died, growing while it keeps dying. */
const RESTART_DELAYS_MS = [100, 1_000, 5_000];
/** How long a call waits for a thread being started again before it is answered "unavailable". */
const WAIT_FOR_THREAD_MS = 5_000;

/**
 * Starts the thread. Compiled, it is plain JavaScript; from the TypeScript sources (tests, `node --import tsx`)
 * the thread registers tsx's loader itself first, since a thread does not get it from its parent.
 */
function startThread(location: string): Worker {
  const workerData = { location };
  if (WORKER_URL.pathname.endsWith('.js')) return new Worker(WORKER_URL, { workerData });
  const tsx = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(tsx)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(WORKER_URL.href)}); });`;
  return new Worker(boot, { eval: true, workerData });
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

function errorOf(error: { name: string; message: string }): Error {
  if (error.name === 'StoreUnavailableError') return new StoreUnavailableError(error.message);
  if (error.name === 'DatabaseError') return new DatabaseError(error.message);
  const rebuilt = new Error(error.message);
  rebuilt.name = error.name;
  return rebuilt;
}

/**
 * A SQLite store run in a worker thread, seen as a {@link Store}. Should the thread die, the calls in flight fail
 * with `StoreUnavailableError` (answered 503: nothing is lost, since a hit is answered 204 only once the thread
 * said it is on disk) and the thread is started again.
 */
class WorkerStore {
  private worker: Worker | undefined;
  /** Resolves when a thread is ready; while one is being started again, a new promise that resolves then. */
  private ready: Promise<void>;
  private markReady: (() => void) | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private lastTrouble: string | undefined;
  private restarts = 0;
  private closing = false;

  constructor(private readonly location: string) {
    this.ready = this.spawn();
    this.ready.catch(() => undefined);
  }

  /** Resolves once the first thread has opened (and migrated) the database; rejects with its reason otherwise. */
  opened(): Promise<void> {
    return this.ready;
  }

  async call(method: keyof Store, args: unknown[]): Promise<unknown> {
    let timer: NodeJS.Timeout | undefined;
    const gaveUp = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new StoreUnavailableError(this.lastTrouble ?? 'the database thread is not running')), WAIT_FOR_THREAD_MS);
    });
    try {
      await Promise.race([this.ready, gaveUp]);
    } finally {
      clearTimeout(timer);
    }
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      this.pending.set(id, { resolve, reject });
      (this.worker as Worker).postMessage({ id, method, args } satisfies WorkerCall);
    });
  }

  trouble(): string | undefined {
    return this.lastTrouble;
  }

  /** Stops the thread for a test of what follows (calls in flight fail; the store starts it again). */
  crashForTest(): Promise<number> {
    return (this.worker as Worker).terminate();
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.call('close', []).catch(() => undefined);
    await this.worker?.terminate();
  }

  private spawn(): Promise<void> {
    const worker = startThread(this.location);
    this.worker = worker;
    return new Promise((resolve, reject) => {
      let started = false;
      worker.on('message', (message: WorkerHello | WorkerAnswer) => {
        if ('ready' in message) {
          started = message.ready;
          if (message.ready) {
            this.restarts = 0;
            resolve();
          } else reject(errorOf(message.error));
          return;
        }
        this.lastTrouble = message.trouble;
        const pending = this.pending.get(message.id);
        if (!pending) return;
        this.pending.delete(message.id);
        if (message.ok) pending.resolve(message.result);
        else pending.reject(errorOf(message.error));
      });
      worker.on('error', () => undefined);
      worker.on('exit', () => {
        if (!started) reject(new DatabaseError(`cannot use the database ${this.location}: its thread stopped while opening it`));
        this.died(worker);
      });
    });
  }

  /** Fails what was in flight, and starts a new thread (again, until one stays up) unless the store is closing. */
  private died(worker: Worker): void {
    if (worker !== this.worker) return;
    for (const [id, pending] of this.pending) {
      this.pending.delete(id);
      pending.reject(new StoreUnavailableError('the database thread stopped; it is being started again'));
    }
    if (this.closing) return;
    this.lastTrouble = 'the database thread stopped; it is being started again';
    if (!this.markReady) this.ready = new Promise((resolve) => (this.markReady = resolve));
    const delay = RESTART_DELAYS_MS[Math.min(this.restarts++, RESTART_DELAYS_MS.length - 1)] as number;
    setTimeout(() => {
      // A thread that fails to start exits too, and comes back here for the next try.
      this.spawn().then(
        () => {
          this.lastTrouble = undefined;
          this.markReady?.();
          this.markReady = undefined;
        },
        () => undefined,
      );
    }, delay).unref();
  }
}

/** A SQLite store in a worker thread, once it has opened the database (throws `DatabaseError` if it cannot). */
export async function openSqliteInWorker(location: string): Promise<Store & { crashForTest(): Promise<number> }> {
  const backing = new WorkerStore(location);
  await backing.opened();
  return new Proxy({} as Store & { crashForTest(): Promise<number> }, {
    get(_, property: string) {
      if (property === 'dialect') return 'sqlite';
      if (property === 'trouble') return () => backing.trouble();
      if (property === 'close') return () => backing.close();
      if (property === 'crashForTest') return () => backing.crashForTest();
      if (property === 'then') return undefined; // not a thenable
      return (...args: unknown[]) => backing.call(property as keyof Store, args);
    },
  });
}
