/**
 * Fans values out to any number of async iterators. Each iterator sees the values pushed after
 * it was created, buffered until read; all end when the inbox ends.
 */
export class Inbox<T> {
  private readonly _readers = new Set<Reader<T>>();
  private _ended = false;

  push(value: T): void {
    for (const r of this._readers) r.push(value);
  }

  end(): void {
    this._ended = true;
    for (const r of this._readers) r.end();
    this._readers.clear();
  }

  iterator(): AsyncIterableIterator<T> {
    const reader = new Reader<T>(() => this._readers.delete(reader));
    if (this._ended) reader.end();
    else this._readers.add(reader);
    return reader;
  }
}

class Reader<T> implements AsyncIterableIterator<T> {
  private readonly _buffer: T[] = [];
  private _waiting: ((r: IteratorResult<T>) => void) | undefined;
  private _done = false;
  private readonly _detach: () => void;

  constructor(detach: () => void) {
    this._detach = detach;
  }

  push(value: T): void {
    if (this._done) return;
    const waiting = this._waiting;
    if (waiting) {
      this._waiting = undefined;
      waiting({ value, done: false });
    } else {
      this._buffer.push(value);
    }
  }

  end(): void {
    this._done = true;
    const waiting = this._waiting;
    this._waiting = undefined;
    waiting?.({ value: undefined, done: true });
  }

  next(): Promise<IteratorResult<T>> {
    if (this._buffer.length > 0) return Promise.resolve({ value: this._buffer.shift() as T, done: false });
    if (this._done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => {
      this._waiting = resolve;
    });
  }

  return(): Promise<IteratorResult<T>> {
    this._buffer.length = 0;
    this.end();
    this._detach();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }
}
