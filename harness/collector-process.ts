import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('../server/main.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** The Node flags `npm start` runs the collector with (package.json `config.nodeFlags`): tests run it the same way. */
export const COLLECTOR_NODE_FLAGS: string[] = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { config: { nodeFlags: string } }
).config.nodeFlags
  .split(/\s+/)
  .filter(Boolean);

/** A collector running as its own process (`node --import tsx server/main.ts`). */
export interface CollectorProcess {
  url: string;
  child: ChildProcess;
  /** Everything it printed so far, stdout and stderr together. */
  output(): string;
  /** Sends a signal and resolves with the exit code (null when killed by the signal). */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Spawns `server/main.ts` (with `args`) and `env` on top of a clean environment, collecting what it prints. */
function spawnCollector(env: Record<string, string>, args: string[] = []): { child: ChildProcess; output(): string } {
  const child = spawn(process.execPath, [...COLLECTOR_NODE_FLAGS, '--import', 'tsx', MAIN, ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  return { child, output: () => output };
}

/** Options of {@link startCollector}. */
export interface StartOptions {
  timeoutMs?: number;
  /** `npm run relay`: a process that only delivers (no HTTP server; its `url` is ''). */
  relayOnly?: boolean;
}

/** Runs the collector with `env` (on top of a clean environment) and waits until it listens (or delivers). */
export async function startCollector(env: Record<string, string>, options: StartOptions | number = {}): Promise<CollectorProcess> {
  const { timeoutMs = 20_000, relayOnly = false } = typeof options === 'number' ? { timeoutMs: options } : options;
  const { child, output: read } = spawnCollector(env, relayOnly ? ['--relay-only'] : []);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`collector did not start:\n${read()}`)), timeoutMs);
    const check = () => {
      const match = /listening on (http:\/\/\S+)/.exec(read());
      if (match?.[1] || (relayOnly && read().includes('delivering only'))) {
        clearTimeout(timer);
        resolve(match?.[1] ?? '');
      }
    };
    child.stdout?.on('data', check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`collector exited with ${code}:\n${read()}`));
    });
  });
  return {
    url,
    child,
    output: read,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      return exited;
    },
  };
}

/** Runs the collector expecting it to refuse to start; resolves with its exit code and output. */
export function runCollectorToExit(env: Record<string, string>, timeoutMs = 20_000): Promise<{ code: number | null; output: string }> {
  const { child, output: read } = spawnCollector(env);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`collector did not exit:\n${read()}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output: read() });
    });
  });
}
