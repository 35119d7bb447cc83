import { describe, expect, it } from 'vitest';
import { layoutProblems } from '../../scripts/check-layout.ts';

describe('the layout of server/', () => {
  it('has no import cycle, areas import only beneath them, and no file is over 400 lines', () => {
    expect(layoutProblems()).toEqual([]);
  });
});
