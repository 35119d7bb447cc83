// The messages between the threads of the collector: the main thread and the delivery thread (delivery-thread.ts,
// delivery-worker.ts), and the delivery thread and the relay's thread (relay-thread.ts, relay-worker.ts).
import type { MessagePort } from 'node:worker_threads';
import type { Config } from '../core/config.ts';
import type { Logger } from '../core/log.ts';
import type { Store } from '../store/store.ts';
import type { Identity } from '../store/types.ts';
import type { RelayOptions } from './relay.ts';

/** How the relay of the thread is set up, once the main thread knows the install. */
export interface RelaySetup {
  config: Config;
  identity: Identity;
  gaTimeoutMs: number;
  options: Omit<RelayOptions, 'random'>;
}

/** What the relay is asked to do ('crash': its thread stops at once, for a test of what follows). */
export type RelayOp = 'start' | 'wake' | 'stop' | 'drain' | 'retry' | 'metrics' | 'crash';

/** A message from the main thread. */
export type ToThread =
  | { kind: 'call'; id: number; method: keyof Store; args: unknown[] }
  | { kind: 'relay-setup'; setup: RelaySetup }
  | { kind: 'relay'; id: number; op: RelayOp; args: unknown[] }
  | { kind: 'close'; id: number };

/** A message to the main thread (and, from the relay's thread, to the delivery thread). */
export type FromThread =
  | { kind: 'ready' }
  | { kind: 'failed'; error: { name: string; message: string } }
  | { kind: 'answer'; id: number; ok: true; result: unknown; trouble: string | undefined }
  | { kind: 'answer'; id: number; ok: false; error: { name: string; message: string }; trouble: string | undefined }
  | { kind: 'log'; level: 'info' | 'warn' | 'error'; message: string };

/** What the relay's thread is started with. */
export interface RelayThreadData {
  location: string;
  setup: RelaySetup;
  /** The delivery thread's write lock (SQLite). */
  writeLock: SharedArrayBuffer;
}

/** A message from the delivery thread to the relay's thread. */
export type ToRelay = { kind: 'relay'; id: number; op: Exclude<RelayOp, 'crash'>; args: unknown[] };

/** An error as it crosses to another thread. */
export function errorOf(error: unknown): { name: string; message: string } {
  return error instanceof Error ? { name: error.name, message: error.message } : { name: 'Error', message: String(error) };
}

/** A logger that hands what it is told to the thread at the other end of `port`, which logs it. */
export function loggerTo(port: MessagePort): Logger {
  const say = (level: 'info' | 'warn' | 'error', message: string) => port.postMessage({ kind: 'log', level, message } satisfies FromThread);
  return {
    info: (message) => say('info', message),
    warn: (message) => say('warn', message),
    error: (message, error) => say('error', error instanceof Error ? `${message}: ${error.message}` : message),
  };
}
