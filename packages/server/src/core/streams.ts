/** The device id of a device stream (`d:<id>`), undefined for a topic stream (`t:<topic>`). */
export function deviceOf(stream: string): string | undefined {
  return stream.startsWith('d:') ? stream.slice(2) : undefined;
}
