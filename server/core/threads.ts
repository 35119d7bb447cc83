import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

/**
 * The URL of a worker thread's file next to `moduleUrl`, as this code is run: `<name>.ts` from the TypeScript
 * sources, `<name>.js` once compiled.
 */
export function threadUrl(moduleUrl: string, name: string): URL {
  return new URL(`./${name}${extname(fileURLToPath(moduleUrl))}`, moduleUrl);
}

/**
 * Starts a worker thread on `url`. Compiled, it is plain JavaScript; from the TypeScript sources (tests,
 * `node --import tsx`) the thread registers tsx's loader itself first, since a thread does not get it from its
 * parent.
 */
export function startThread(url: URL, workerData: unknown): Worker {
  if (url.pathname.endsWith('.js')) return new Worker(url, { workerData });
  const tsx = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(tsx)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(url.href)}); });`;
  return new Worker(boot, { eval: true, workerData });
}

/** How long a restart waits after a thread died: growing while it keeps dying, from the `restarts` before it. */
export function restartDelay(restarts: number): number {
  const delays = [100, 1_000, 5_000];
  return delays[Math.min(restarts, delays.length - 1)] as number;
}

/** A thread's answer to one call (see {@link ThreadCalls}). */
export type CallAnswer =
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; error: { name: string; message: string } };

/** An error as it came across from a thread, as one of this side: by default an `Error` under the same name. */
function rebuiltError(error: { name: string; message: string }): Error {
  return Object.assign(new Error(error.message), { name: error.name });
}

/**
 * Calls to a worker thread: each is posted under an id of its own and settled by the thread's answer with that
 * id. Should the thread die, the calls in flight fail together.
 */
export class ThreadCalls {
  private readonly pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: unknown) => void }>();
  private nextId = 1;

  constructor(private readonly rebuild: (error: { name: string; message: string }) => Error = rebuiltError) {}

  /** Posts a call (`post` sends the message for its id); resolves or rejects with the thread's answer. */
  call(post: (id: number) => void): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      this.pending.set(id, { resolve, reject });
      post(id);
    });
  }

  /** Settles the call `answer` is for (none: it was failed already). */
  settle(answer: CallAnswer): void {
    const pending = this.pending.get(answer.id);
    if (!pending) return;
    this.pending.delete(answer.id);
    if (answer.ok) pending.resolve(answer.result);
    else pending.reject(this.rebuild(answer.error));
  }

  /** Fails every call in flight with `error`. */
  failAll(error: Error): void {
    for (const [id, pending] of this.pending) {
      this.pending.delete(id);
      pending.reject(error);
    }
  }
}

/** Resolves once `ready` does; rejects with `gaveUp()` if that takes longer than `ms`. */
export async function readyWithin(ready: Promise<unknown>, ms: number, gaveUp: () => Error): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(gaveUp()), ms);
  });
  try {
    await Promise.race([ready, late]);
  } finally {
    clearTimeout(timer);
  }
}
