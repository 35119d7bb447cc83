// Drives HTTP load with autocannon in its own process, so the load generator shares no event loop with anything measured.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { ROOT } from './support.ts';

const AUTOCANNON = createRequire(import.meta.url).resolve('autocannon/autocannon.js');

/** What one load run sends. */
export interface LoadOptions {
  url: string;
  connections: number;
  /** Seconds to run; ignored when `amount` is set. */
  durationS?: number;
  /** Exactly this many requests, then stop. */
  amount?: number;
  /** At most this many requests a second, all connections together (a steady pace instead of flat out). */
  rate?: number;
  method?: string;
  headers?: Record<string, string>;
  body?: string;
}

/** The part of autocannon's JSON report the benchmark reads. */
export interface LoadResult {
  requestsPerSecond: number;
  total: number;
  /** Latency percentiles in milliseconds. */
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  durationS: number;
}

interface AutocannonReport {
  duration: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  latency: { p50: number; p99: number };
  requests: { average: number; total: number };
}

/** Runs autocannon against `options.url` and returns its figures. */
export function runLoad(options: LoadOptions): Promise<LoadResult> {
  const args = [AUTOCANNON, '--json', '--no-progress', '-c', String(options.connections), '-m', options.method ?? 'POST'];
  if (options.amount !== undefined) args.push('-a', String(options.amount));
  else args.push('-d', String(options.durationS ?? 10));
  if (options.rate !== undefined) args.push('-R', String(options.rate));
  for (const [name, value] of Object.entries(options.headers ?? {})) args.push('-H', `${name}=${value}`);
  if (options.body !== undefined) args.push('-b', options.body);
  args.push(options.url);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) {
        reject(new Error(`autocannon exited with ${code}: ${stderr}`));
        return;
      }
      const report = JSON.parse(stdout) as AutocannonReport;
      resolve({
        requestsPerSecond: report.requests.average,
        total: report.requests.total,
        p50: report.latency.p50,
        p99: report.latency.p99,
        non2xx: report.non2xx,
        errors: report.errors,
        timeouts: report.timeouts,
        durationS: report.duration,
      });
    });
  });
}
