import type { PushMessage } from '@pushwire/client';

/**
 * Counts what an app callback saw: per id how often, in what order per stream. The numbers the
 * reliability tests assert: received, duplicated (to the app), lost, out of order.
 */
export class Collector {
  readonly messages: PushMessage[] = [];
  private readonly seen = new Map<string, number>();

  readonly onMessage = (m: PushMessage): void => {
    this.messages.push(m);
    this.seen.set(m.id, (this.seen.get(m.id) ?? 0) + 1);
  };

  get received(): number {
    return this.seen.size;
  }

  get duplicated(): number {
    let n = 0;
    for (const c of this.seen.values()) n += c - 1;
    return n;
  }

  lost(sent: Iterable<string>): string[] {
    return [...sent].filter((id) => !this.seen.has(id));
  }

  /** Streams whose seqs did not strictly increase in arrival order. */
  outOfOrder(): string[] {
    const last = new Map<string, number>();
    const bad = new Set<string>();
    for (const m of this.messages) {
      if ((last.get(m.stream) ?? 0) >= m.seq) bad.add(m.stream);
      last.set(m.stream, m.seq);
    }
    return [...bad];
  }

  has(ids: Iterable<string>): boolean {
    for (const id of ids) if (!this.seen.has(id)) return false;
    return true;
  }
}
