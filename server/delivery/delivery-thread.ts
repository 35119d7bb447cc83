import type { Worker } from 'node:worker_threads';
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { Logger } from '../core/log.ts';
import { readyWithin, restartDelay, startThread, ThreadCalls, threadUrl } from '../core/threads.ts';
import { DatabaseError, STORE_CLOSED, StoreUnavailableError } from '../store/errors.ts';
import { describeLocation, isPostgresUrl } from '../store/location.ts';
import type { Store } from '../store/store.ts';
import type { FromThread, RelayOp, RelaySetup, ToThread } from './thread-messages.ts';
import { newRelayOwner, type Delivery } from './relay.ts';

const WORKER_URL = threadUrl(import.meta.url, 'delivery-worker');
/** How long a call waits for a thread being started again before it is answered "unavailable". */
const WAIT_FOR_THREAD_MS = 5_000;

function errorOf(error: { name: string; message: string }): Error {
  if (error.name === 'StoreUnavailableError') return new StoreUnavailableError(error.message);
  if (error.name === 'DatabaseError') return new DatabaseError(error.message);
  const rebuilt = new Error(error.message);
  rebuilt.name = error.name;
  return rebuilt;
}

/** Threads started ahead of their open, by location. */
const early = new Map<string, Promise<DeliveryThread>>();

/** Counters of prom-client, as `getMetricsAsJSON()` gives them. */
export type MetricsJson = MetricObjectWithValues<MetricValue<string>>[];

/**
 * The store's connection and the relay in a worker thread of their own, seen from the main thread as a
 * {@link Store} and a {@link Delivery}. Should the thread die, what was in flight fails with
 * `StoreUnavailableError` (answered 503: a hit is answered 204 only once the thread said it is on disk, so nothing
 * is lost) and the thread is started again, its relay with it.
 */
export class DeliveryThread {
  /** The store, through the thread. */
  readonly store: Store;
  private worker: Worker | undefined;
  private ready: Promise<void>;
  private markReady: (() => void) | undefined;
  private readonly calls = new ThreadCalls(errorOf);
  private lastTrouble: string | undefined;
  private restarts = 0;
  /** The current thread said it is ready and has not died since. */
  private up = false;
  private closing = false;
  /** The store was opened once: a thread that dies after that is started again; one that never opened is not. */
  private opened = false;
  private relaySetup: RelaySetup | undefined;
  private relayStarted = false;

  private constructor(
    private readonly location: string,
    private readonly log: Logger,
  ) {
    this.ready = this.spawn();
    this.ready.catch(() => undefined);
    this.store = new Proxy({} as Store, {
      get: (_, property: string) => {
        if (property === 'dialect') return isPostgresUrl(location) ? 'postgres' : 'sqlite';
        if (property === 'trouble') return () => this.lastTrouble;
        if (property === 'close') return () => this.close();
        if (property === 'then') return undefined; // not a thenable
        return (...args: unknown[]) => this.send((id) => ({ kind: 'call', id, method: property as keyof Store, args }));
      },
    });
  }

  /** Starts the thread and resolves once it has opened (and migrated) the store; throws `DatabaseError` if it cannot. */
  static async open(location: string, log: Logger): Promise<DeliveryThread> {
    const started = early.get(location);
    if (started) {
      early.delete(location);
      return started;
    }
    const thread = new DeliveryThread(location, log);
    await thread.ready;
    return thread;
  }

  /**
   * Starts the thread for `location` now, for the next {@link open} of that location to take: a server starts it
   * before loading its routes, so that both happen at once.
   */
  static startEarly(location: string, log: Logger): void {
    const starting = DeliveryThread.open(location, log);
    starting.catch(() => undefined); // the error is the open's that takes it
    early.set(location, starting);
  }

  /** The thread's relay, set up for this install; what the main thread uses as its {@link Delivery}. */
  relay(setup: RelaySetup): Delivery {
    // One owner for the relay of every thread started here: a thread started again takes its leases back at once.
    this.relaySetup = { ...setup, options: { ...setup.options, owner: setup.options.owner ?? newRelayOwner() } };
    this.worker?.postMessage({ kind: 'relay-setup', setup: this.relaySetup } satisfies ToThread);
    const op = (name: RelayOp, args: unknown[] = []) => this.send((id) => ({ kind: 'relay', id, op: name, args }));
    return {
      start: () => {
        this.relayStarted = true;
        void op('start').catch(() => undefined);
      },
      wake: () => this.worker?.postMessage({ kind: 'relay', id: 0, op: 'wake', args: [] } satisfies ToThread),
      stop: async () => {
        this.relayStarted = false;
        await op('stop').catch(() => undefined);
      },
      drain: async () => {
        await op('drain');
      },
      retryFailed: async (tokenId, ids) => (await op('retry', [tokenId, ids])) as number,
    };
  }

  /** The relay's counters, to add to the main thread's at `/metrics` (none while the thread is down). */
  async metrics(): Promise<MetricsJson> {
    if (!this.relaySetup) return [];
    return ((await this.send((id) => ({ kind: 'relay', id, op: 'metrics', args: [] })).catch(() => [])) as MetricsJson) ?? [];
  }

  /** Stops the relay's thread for a test of what follows (it is started again). */
  async crashRelayForTest(): Promise<void> {
    await this.send((id) => ({ kind: 'relay', id, op: 'crash', args: [] }));
  }

  /** Stops the thread for a test of what follows (calls in flight fail; it is started again). */
  crashForTest(): Promise<number> {
    return (this.worker as Worker).terminate();
  }

  private async close(): Promise<void> {
    this.closing = true;
    await this.send((id) => ({ kind: 'close', id }), true).catch(() => undefined);
    await this.worker?.terminate();
  }

  private async send(message: (id: number) => ToThread, closing = false): Promise<unknown> {
    // After a stop the thread is gone: a call fails at once, as a 503 says, rather than wait for an answer forever.
    if (this.closing && !closing) throw new StoreUnavailableError(STORE_CLOSED);
    // The usual case, on every hit's commit: the thread is up, nothing to wait for.
    if (!this.up) await readyWithin(this.ready, WAIT_FOR_THREAD_MS, () => new StoreUnavailableError(this.lastTrouble ?? 'the database thread is not running'));
    return this.calls.call((id) => (this.worker as Worker).postMessage(message(id)));
  }

  private spawn(): Promise<void> {
    const worker = startThread(WORKER_URL, { location: this.location });
    this.worker = worker;
    return new Promise((resolve, reject) => {
      let started = false;
      worker.on('message', (message: FromThread) => {
        switch (message.kind) {
          case 'ready':
            started = true;
            this.up = true;
            this.opened = true;
            this.restarts = 0;
            // A thread started again gets its relay back, running if it was.
            if (this.relaySetup) worker.postMessage({ kind: 'relay-setup', setup: this.relaySetup } satisfies ToThread);
            if (this.relayStarted) worker.postMessage({ kind: 'relay', id: 0, op: 'start', args: [] } satisfies ToThread);
            resolve();
            return;
          case 'failed':
            reject(errorOf(message.error));
            return;
          case 'log':
            this.log[message.level](message.message);
            return;
          case 'answer':
            this.lastTrouble = message.trouble;
            this.calls.settle(message);
        }
      });
      // Messages name the store without a PostgreSQL URL's password.
      const where = describeLocation(this.location);
      worker.on('error', (error) => {
        // Failing while it opens the store (say, a server that does not speak PostgreSQL's protocol) is the open's
        // failure, in one line; afterwards, the thread dies and is started again.
        if (!started) reject(new DatabaseError(`cannot use the database ${where}: ${error.message.split('\n')[0]}`));
        else this.log.error('the delivery thread failed', error);
      });
      worker.on('exit', () => {
        if (!started) reject(new DatabaseError(`cannot use the database ${where}: its thread stopped while opening it`));
        this.died(worker);
      });
    });
  }

  /** Fails what was in flight, and starts a new thread (again, until one stays up) unless closing. */
  private died(worker: Worker): void {
    if (worker !== this.worker) return;
    this.up = false;
    this.calls.failAll(new StoreUnavailableError('the database thread stopped; it is being started again'));
    // A store that never opened is not retried in the background: the open failed, and whoever asked was told.
    if (this.closing || !this.opened) return;
    this.lastTrouble = 'the database thread stopped; it is being started again';
    this.log.error(this.lastTrouble);
    if (!this.markReady) this.ready = new Promise((resolve) => (this.markReady = resolve));
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
    }, restartDelay(this.restarts++)).unref();
  }
}
