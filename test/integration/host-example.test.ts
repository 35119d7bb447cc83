import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

// Whatever a test leaves behind (a running example, its database) is cleaned up after it, even when it failed.
const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

describe('examples/host-app.ts', () => {
  it('listens on 127.0.0.1 without HOST, says so, serves / and the mounted /analytics/healthz, and stops on SIGTERM', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'analytics-host-example-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const db = join(dir, 'analytics.db');

    // A clean environment: no HOST, PORT 0 (any free port), nothing sent anywhere but a closed local port.
    const child = spawn(process.execPath, ['--import', 'tsx', 'examples/host-app.ts'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', PORT: '0', ANALYTICS_DB: db, ANALYTICS_GA_URL: 'http://127.0.0.1:9/mp/collect' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const pid = child.pid;
    if (pid === undefined) throw new Error('the example did not start');
    cleanups.push(() => {
      if (child.exitCode === null && child.signalCode === null) process.kill(pid, 'SIGKILL');
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));

    const listening = /host app listening on (http:\/\/\S+)/;
    await vi.waitFor(
      () => {
        if (child.exitCode !== null) throw new Error(`the example exited with ${child.exitCode}:\n${output}`);
        expect(output).toMatch(listening);
      },
      { timeout: 20_000, interval: 50 },
    );
    const url = listening.exec(output)?.[1] ?? '';
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(new URL(url).port).not.toBe('0');

    const home = await fetch(`${url}/`);
    expect(home.status).toBe(200);
    expect(await home.text()).toBe('Hello from the host app');
    const health = await fetch(`${url}/analytics/healthz`);
    expect(health.status).toBe(200);
    expect(existsSync(db)).toBe(true);

    process.kill(pid, 'SIGTERM');
    expect(await exited).toBe(0);
  });
});
