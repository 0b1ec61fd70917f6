/**
 * Fans values out to any number of async iterators. Each iterator sees the values pushed after
 * it was created, buffered until read; all end when the inbox ends.
 */
export interface Inbox<T> {
  push(value: T): void;
  end(): void;
  iterator(): AsyncIterableIterator<T>;
}

type Result<T> = IteratorResult<T, undefined>;

const DONE: Result<never> = { value: undefined, done: true };

export function createInbox<T>(): Inbox<T> {
  /** One per live iterator: takes the next value, or {@link DONE}. */
  const readers = new Set<(r: Result<T>) => void>();
  let ended = false;
  return {
    push(value) {
      for (const reader of readers) reader({ value, done: false });
    },
    end() {
      ended = true;
      for (const reader of readers) reader(DONE);
      readers.clear();
    },
    iterator() {
      const buffer: T[] = [];
      let waiting: ((r: Result<T>) => void) | undefined;
      let done = false;
      const reader = (r: Result<T>): void => {
        if (done) return;
        done = r.done === true;
        const w = waiting;
        waiting = undefined;
        if (w) w(r);
        else if (!done) buffer.push(r.value as T);
      };
      if (ended) reader(DONE);
      else readers.add(reader);
      return {
        next: () =>
          Promise.resolve(
            buffer.length > 0
              ? { value: buffer.shift() as T, done: false }
              : done
                ? DONE
                : new Promise<Result<T>>((resolve) => {
                    waiting = resolve;
                  }),
          ),
        return() {
          buffer.length = 0;
          reader(DONE);
          readers.delete(reader);
          return Promise.resolve(DONE);
        },
        [Symbol.asyncIterator]() {
          return this;
        },
      };
    },
  };
}
