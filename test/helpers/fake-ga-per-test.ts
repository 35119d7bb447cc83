import { afterEach, beforeEach } from 'vitest';
import { startFakeGa, type FakeGa } from '../../harness/fake-ga.ts';

/**
 * A fresh fake GA for each test of the calling file, handed to `use` before the test. After it, whatever the
 * test registered with the returned function is stopped, then the fake is closed.
 * @example let ga: FakeGa; const stopAfterTest = fakeGaPerTest((started) => (ga = started));
 */
export function fakeGaPerTest(use: (ga: FakeGa) => void): <T extends { stop(): Promise<unknown> }>(thing: T) => T {
  let current: FakeGa | undefined;
  const toStop: Array<{ stop(): Promise<unknown> }> = [];
  beforeEach(async () => {
    current = await startFakeGa();
    use(current);
  });
  afterEach(async () => {
    await Promise.all(toStop.splice(0).map((thing) => thing.stop()));
    await current?.close();
  });
  return (thing) => {
    toStop.push(thing);
    return thing;
  };
}
