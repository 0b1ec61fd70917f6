import { describe, expect, it } from 'vitest';
import { deviceOfStream, deviceStream, parseStream, topicOfStream, topicStream } from './streams.js';

describe('stream names', () => {
  it('build and parse back', () => {
    expect(deviceStream('abc')).toBe('d:abc');
    expect(topicStream('news/a:b')).toBe('t:news/a:b');
    expect(parseStream(deviceStream('abc'))).toEqual({ kind: 'device', device: 'abc' });
    expect(parseStream(topicStream('news/a:b'))).toEqual({ kind: 'topic', topic: 'news/a:b' });
    expect(deviceOfStream('t:x')).toBeUndefined();
    expect(topicOfStream('d:x')).toBeUndefined();
    expect(topicOfStream('t:x')).toBe('x');
  });

  it('refuse names that are neither', () => {
    for (const bad of ['', 'd:', 't:', 'x:abc', 'abc', 'D:abc'])
      expect(parseStream(bad), bad).toBeUndefined();
  });
});
