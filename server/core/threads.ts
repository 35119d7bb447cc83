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
