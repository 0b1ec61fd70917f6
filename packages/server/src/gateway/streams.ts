/** Delivery progress of one stream within one session. */
export class StreamState {
  /** A replay from the store is running. */
  pumping = false;
  /** Something was appended while the replay ran: read again before going live. */
  dirty = false;
  /** The next state of the session's list. */
  next: StreamState | undefined = undefined;

  constructor(
    readonly name: string,
    /** Highest seq sent on this socket. */
    public sent: number,
  ) {}
}

/** Past this many streams a session also keeps an index by name (lookups stay O(1)). */
const INDEX_FROM = 8;

/**
 * The streams one session follows, with their delivery state. A session usually follows its
 * device stream and a few topics, and a node holds tens of thousands of them: a linked list of
 * the states costs one small object per stream, where a `Map` costs a hash table of ~300 bytes per
 * session. Lookups walk the list; a session following more than {@link INDEX_FROM} streams also
 * keeps a `Map` index, so a device with many topics is not slower per message.
 */
export class StreamStates {
  private head: StreamState | undefined = undefined;
  private index: Map<string, StreamState> | undefined = undefined;

  /** Number of streams. */
  get size(): number {
    let n = 0;
    for (let st = this.head; st; st = st.next) n++;
    return n;
  }

  get(name: string): StreamState | undefined {
    if (this.index) return this.index.get(name);
    for (let st = this.head; st; st = st.next) if (st.name === name) return st;
    return undefined;
  }

  has(name: string): boolean {
    return this.get(name) !== undefined;
  }

  /** Adds a stream (the caller checked it is not there yet); streams keep their order of adding. */
  add(name: string, sent: number): StreamState {
    const st = new StreamState(name, sent);
    let size = 1;
    if (!this.head) this.head = st;
    else {
      let last = this.head;
      for (size = 2; last.next; size++) last = last.next;
      last.next = st;
    }
    if (this.index) this.index.set(name, st);
    else if (size > INDEX_FROM) this.index = new Map([...this.states()].map((s) => [s.name, s]));
    return st;
  }

  delete(name: string): boolean {
    let prev: StreamState | undefined;
    for (let st = this.head; st; prev = st, st = st.next) {
      if (st.name !== name) continue;
      if (prev) prev.next = st.next;
      else this.head = st.next;
      this.index?.delete(name);
      if (this.index && this.index.size <= INDEX_FROM / 2) this.index = undefined;
      return true;
    }
    return false;
  }

  /** The stream names, in order of adding. */
  *keys(): IterableIterator<string> {
    for (const st of this.states()) yield st.name;
  }

  *states(): IterableIterator<StreamState> {
    for (let st = this.head; st; ) {
      const next = st.next; // a state may be deleted while its caller iterates
      yield st;
      st = next;
    }
  }
}
