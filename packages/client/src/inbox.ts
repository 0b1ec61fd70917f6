/**
 * Fans values out to any number of async iterators. Each iterator sees the values pushed after
 * it was created, buffered until read; all end when the inbox ends.
 */
export class Inbox<T> {
  readonly #readers = new Set<Reader<T>>();
  #ended = false;

  push(value: T): void {
    for (const r of this.#readers) r.push(value);
  }

  end(): void {
    this.#ended = true;
    for (const r of this.#readers) r.end();
    this.#readers.clear();
  }

  iterator(): AsyncIterableIterator<T> {
    const reader = new Reader<T>(() => this.#readers.delete(reader));
    if (this.#ended) reader.end();
    else this.#readers.add(reader);
    return reader;
  }
}

class Reader<T> implements AsyncIterableIterator<T> {
  readonly #buffer: T[] = [];
  #waiting: ((r: IteratorResult<T>) => void) | undefined;
  #done = false;
  readonly #detach: () => void;

  constructor(detach: () => void) {
    this.#detach = detach;
  }

  push(value: T): void {
    if (this.#done) return;
    const waiting = this.#waiting;
    if (waiting) {
      this.#waiting = undefined;
      waiting({ value, done: false });
    } else {
      this.#buffer.push(value);
    }
  }

  end(): void {
    this.#done = true;
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting?.({ value: undefined, done: true });
  }

  next(): Promise<IteratorResult<T>> {
    if (this.#buffer.length > 0) return Promise.resolve({ value: this.#buffer.shift() as T, done: false });
    if (this.#done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => {
      this.#waiting = resolve;
    });
  }

  return(): Promise<IteratorResult<T>> {
    this.#buffer.length = 0;
    this.end();
    this.#detach();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }
}
