/** Whether `stream` is a device's own stream (`d:<id>`) rather than a topic's (`t:<topic>`). */
export const isDeviceStream = (stream: string): boolean => stream.startsWith('d:');

/** The device id of a device stream (`d:<id>`), undefined for a topic stream (`t:<topic>`). */
export function deviceOf(stream: string): string | undefined {
  return isDeviceStream(stream) ? stream.slice(2) : undefined;
}
