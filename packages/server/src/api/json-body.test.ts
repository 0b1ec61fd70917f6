import { describe, expect, it } from 'vitest';
import { jsonDepth } from './json-body.js';

describe('jsonDepth', () => {
  it('counts nesting outside strings only, escapes included', () => {
    const cases: [string, number][] = [
      ['1', 0],
      ['"[[["', 0],
      ['[[],[[]]]', 3],
      ['{"a":"[[[["}', 1],
      ['{"a":"\\\\"}', 1],
      ['{"a":"\\"[[["}', 1],
      ['[{"x":"]]]]"}]', 2],
      ['{"a":{"b":[{"c":"\\\\\\"{"}]}}', 4],
    ];
    for (const [text, depth] of cases) {
      JSON.parse(text); // each is valid JSON
      expect(jsonDepth(text, 64), text).toBe(depth);
    }
  });

  it('stops as soon as the limit is passed, on any size of input', () => {
    expect(jsonDepth('['.repeat(1_000_000), 64)).toBe(65);
    expect(jsonDepth(`${'['.repeat(64)}${']'.repeat(64)}`, 64)).toBe(64);
  });
});
