/**
 * Stream names, built and parsed in one place. A device's own stream is `d:<device id>`, a topic's
 * `t:<topic>`; cursors in `hello`/`welcome`, stored entries and bus messages all use these names.
 */

/** A parsed stream name: a device's own stream or a topic's. */
export type StreamRef = { kind: 'device'; device: string } | { kind: 'topic'; topic: string };

/** The stream of a device: `d:<id>`. */
export const deviceStream = (deviceId: string): string => `d:${deviceId}`;

/** The stream of a topic: `t:<topic>`. */
export const topicStream = (topic: string): string => `t:${topic}`;

/** Whether `stream` is a device's own stream (`d:…`); allocation-free, for hot paths. */
export const isDeviceStream = (stream: string): boolean => stream.startsWith('d:');

/** Whether `stream` is a topic's stream (`t:…`). */
export const isTopicStream = (stream: string): boolean => stream.startsWith('t:');

/** The device id of a device stream, undefined for any other name. */
export function deviceOfStream(stream: string): string | undefined {
  return isDeviceStream(stream) ? stream.slice(2) : undefined;
}

/** The topic of a topic stream, undefined for any other name. */
export function topicOfStream(stream: string): string | undefined {
  return isTopicStream(stream) ? stream.slice(2) : undefined;
}

/** Parses a stream name; undefined for a name that is neither a device's nor a topic's stream. */
export function parseStream(stream: string): StreamRef | undefined {
  if (stream.length < 3) return undefined;
  if (isDeviceStream(stream)) return { kind: 'device', device: stream.slice(2) };
  if (isTopicStream(stream)) return { kind: 'topic', topic: stream.slice(2) };
  return undefined;
}
