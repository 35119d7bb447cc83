import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { fieldsSentPerFeature } from '../../server/admin/about.ts';

const README = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

/** The rows of the README's field table: feature label, then the backquoted names of each column. */
function readmeRows(): Array<{ label: string; events: string[]; request: string[]; event: string[] }> {
  const begin = README.indexOf('<!-- fields-sent: begin -->');
  const end = README.indexOf('<!-- fields-sent: end -->');
  expect(begin).toBeGreaterThan(-1);
  expect(end).toBeGreaterThan(begin);
  const names = (cell: string) => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1] as string);
  return README.slice(begin, end)
    .split('\n')
    .filter((line) => line.startsWith('| ') && !line.startsWith('| feature') && !line.startsWith('| ---'))
    .map((line) => {
      const [label = '', events = '', request = '', event = ''] = line.split('|').slice(1, -1).map((cell) => cell.trim());
      return { label, events: names(events), request: names(request), event: names(event) };
    });
}

describe("the README's \"What is sent\"", () => {
  it('lists exactly the fields the relay puts in each feature\'s requests', () => {
    const expected = fieldsSentPerFeature().map((f) => ({ label: f.label, events: [...f.events].sort(), request: [...f.request].sort(), event: [...f.event].sort() }));
    const documented = readmeRows().map((r) => ({ label: r.label, events: r.events.sort(), request: r.request.sort(), event: r.event.sort() }));
    expect(documented).toEqual(expected);
  });

  it('has a custom definition to register for every parameter of task events and daily stats, and the app version', () => {
    const begin = README.indexOf('<!-- custom-definitions: begin -->');
    const end = README.indexOf('<!-- custom-definitions: end -->');
    expect(begin).toBeGreaterThan(-1);
    const registered = README.slice(begin, end)
      .split('\n')
      .filter((line) => line.startsWith('| custom'))
      .map((line) => /`([^`]+)`/.exec(line.split('|')[4] ?? '')?.[1]);
    const sent = fieldsSentPerFeature()
      .filter((f) => f.feature !== 'pageViews')
      .flatMap((f) => [...f.event, ...f.request])
      .flatMap((field) => {
        const param = /^params\.(.+)$/.exec(field)?.[1];
        const property = /^user_properties\.([^.]+)\.value$/.exec(field)?.[1];
        return param ? [param] : property ? [property] : [];
      });
    expect(new Set(registered)).toEqual(new Set(sent));
  });
});
