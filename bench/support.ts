// What the benchmark and the soak share: the request they send, databases with tokens, processes, /proc and /metrics.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { openStore } from '../server/store/open-store.ts';
import { TEAM_TOKEN } from '../server/tokens/team-token.ts';

/** The repository root (the working directory of every process started here). */
export const ROOT = fileURLToPath(new URL('..', import.meta.url));

export { COLLECTOR_NODE_FLAGS } from '../harness/collector-process.ts';

/** A current desktop Chrome on Windows, the most common browser a collector sees. */
export const CHROME_UA =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36';

/** The headers `navigator.sendBeacon` sends with a page-view hit from Chrome, minus cookies (the snippet sets none). */
export const HIT_HEADERS: Record<string, string> = {
  'Content-Type': 'text/plain;charset=UTF-8',
  'User-Agent': CHROME_UA,
  Accept: '*/*',
  'Accept-Language': 'en-GB,en;q=0.9',
  Origin: 'https://app.example.org',
  Referer: 'https://app.example.org/',
};

/** A page-view hit as the snippet sends it. */
export function hitBody(path: string): string {
  return JSON.stringify({ path, title: 'Getting started · Example docs', language: 'en-GB' });
}

/** A token the benchmark or the soak sets up: a real-looking measurement id and a secret. */
export interface BenchToken {
  measurementId: string;
  sendPageViews?: boolean;
}

/**
 * Creates a collector database (a SQLite file or a PostgreSQL URL; migrated, install identity made) holding
 * `list` as tokens. The preloaded team token keeps its placeholder id, so the relay skips it.
 */
export async function prepareDatabase(location: string, list: BenchToken[]): Promise<void> {
  const store = await openStore(location);
  try {
    const now = Date.now();
    await store.install(TEAM_TOKEN, now);
    for (const token of list) {
      await store.createToken(
        {
          name: `Bench ${token.measurementId}`,
          measurementId: token.measurementId,
          apiSecret: `secret-${token.measurementId}`,
          sendDailyStats: true,
          sendTaskEvents: true,
          sendPageViews: token.sendPageViews ?? true,
          ignorePaths: [],
        },
        now,
      );
    }
  } finally {
    await store.close();
  }
}

/**
 * The environment of a collector under test: loopback, the given database and fake GA, and the rate limit out
 * of the way (it counts per client address, and all load comes from one).
 */
/** The metrics token of benchmarked collectors. */
export const BENCH_METRICS_TOKEN = 'bench-metrics-token-0123456789';

export function collectorEnv(dbPath: string, gaUrl: string, port = '0'): Record<string, string> {
  return {
    HOST: '127.0.0.1',
    PORT: port,
    ANALYTICS_DB: dbPath,
    ANALYTICS_GA_URL: gaUrl,
    ANALYTICS_RATE_LIMIT: '1000000000',
    ANALYTICS_METRICS_TOKEN: BENCH_METRICS_TOKEN,
  };
}

/** A server under test running as its own process. */
export interface ServerProcess {
  url: string;
  pid: number;
  /** Sends a signal and resolves once the process has exited. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * Runs `node [nodeArgs] <script>` (with tsx's loader for a `.ts` script; compiled JavaScript runs as it is) and
 * waits for its `listening on http://…` line.
 */
export async function startScript(
  script: string,
  env: Record<string, string> = {},
  nodeArgs: string[] = [],
  timeoutMs = 20_000,
): Promise<ServerProcess> {
  const loader = script.endsWith('.ts') ? ['--import', 'tsx'] : [];
  const child: ChildProcess = spawn(process.execPath, [...nodeArgs, ...loader, script], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${script} did not start:\n${output}`)), timeoutMs);
    child.stdout?.on('data', () => {
      const match = /listening on (http:\/\/\S+)/.exec(output);
      if (match?.[1]) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`${script} exited:\n${output}`));
    });
  });
  return {
    url,
    pid: child.pid ?? 0,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      await exited;
    },
  };
}

/** Resident memory of a process from `/proc/<pid>/status`, in bytes: now, and the peak since it started. */
export function memoryOf(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
}

/** CPU time a process has used so far (user + system), in milliseconds, from `/proc/<pid>/stat`. */
export function cpuTimeOf(pid: number): number {
  return cpuTimeIn(`/proc/${pid}/stat`);
}

/** User + system CPU time in a `/proc` stat file (a process's, or a thread's under `task/`), in milliseconds. */
export function cpuTimeIn(statFile: string): number {
  // Fields after the command name (which is in parentheses and may hold spaces); utime and stime are 14th and 15th.
  const stat = readFileSync(statFile, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_SECOND;
}

// USER_HZ: 100 on every Linux architecture Node runs on.
const CLOCK_TICKS_PER_SECOND = 100;

/** One sample of a Prometheus text exposition: `name{labels} value` → value, labels as written. */
export type MetricSamples = Map<string, number>;

/** Reads `GET /metrics` into samples keyed by `name{labels}` (or `name` alone). */
export async function readMetrics(baseUrl: string): Promise<MetricSamples> {
  const text = await (await fetch(`${baseUrl}/metrics`, { headers: { authorization: `Bearer ${BENCH_METRICS_TOKEN}` } })).text();
  const samples: MetricSamples = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    samples.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return samples;
}

/** The sum of every sample of `name` whose labels include `labels` (all samples of `name` when empty). */
export function metricSum(samples: MetricSamples, name: string, labels: Record<string, string> = {}): number {
  const wanted = Object.entries(labels).map(([key, value]) => `${key}="${value}"`);
  let sum = 0;
  for (const [key, value] of samples) {
    const brace = key.indexOf('{');
    const keyName = brace === -1 ? key : key.slice(0, brace);
    if (keyName !== name) continue;
    if (wanted.every((pair) => key.includes(pair))) sum += value;
  }
  return sum;
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `predicate` every `everyMs` until it holds; false if `timeoutMs` passed first. */
export async function until(predicate: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 50): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) return false;
    await sleep(everyMs);
  }
  return true;
}
