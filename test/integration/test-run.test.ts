import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const VITEST = join(dirname(createRequire(import.meta.url).resolve('vitest/package.json')), 'vitest.mjs');

describe('a test run', () => {
  it('that has a failing test exits non-zero, with the throwaway PostgreSQL started and stopped', () => {
    // Without ANALYTICS_TEST_PG_URL, so that the set-up starts (and loads) its own server, as on a fresh machine.
    const { ANALYTICS_TEST_PG_URL: _given, VITEST: _inner, VITEST_WORKER_ID: _worker, ...env } = process.env;
    const run = spawnSync(process.execPath, [VITEST, 'run', '--config', 'test/fixtures/exit-code/vitest.config.ts'], {
      cwd: ROOT,
      env: { ...env, NODE_ENV: 'test' },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(`${run.stdout}${run.stderr}`).toContain('fails on purpose');
    expect(run.status).toBe(1);
  }, 90_000);
});
