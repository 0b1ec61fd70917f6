import { expect, it } from 'vitest';
import type { StoredEntry } from '../store/types.js';
import type { Bus, BusSink, CatchUpScope, DeviceCommand } from './types.js';

/** A node's delivery core, reduced to what the bus calls: records everything. */
export class Sink implements BusSink {
  readonly entries: StoredEntry[] = [];
  readonly commands: [string, DeviceCommand][] = [];
  readonly resyncs: CatchUpScope[] = [];
  readonly held = new Set<string>();
  /** Stands in for the durable store: what a full resync reads back for the devices held here. */
  constructor(private readonly stored: StoredEntry[] = []) {}
  dispatch(entries: StoredEntry[]): void {
    this.entries.push(...entries);
  }
  command(deviceId: string, cmd: DeviceCommand): void {
    this.commands.push([deviceId, cmd]);
  }
  holds(deviceId: string): boolean {
    return this.held.has(deviceId);
  }
  async resync(scope?: CatchUpScope): Promise<number> {
    this.resyncs.push(scope);
    // Like the hub: read each held device's stream from the store, skip what was delivered.
    const seen = new Set(this.ids());
    const missed = this.stored.filter(
      (e) =>
        !seen.has(e.id) &&
        this.held.has(e.stream.slice(2)) &&
        (!scope || ('device' in scope && scope.device === e.stream.slice(2))),
    );
    if (missed.length > 0) this.dispatch(missed);
    return 0;
  }
  ids(): string[] {
    return this.entries.map((e) => e.id);
  }
}

export const entry = (id: string, stream: string, seq = 1): StoredEntry => ({
  id,
  stream,
  seq,
  prevSeq: seq - 1,
  ts: 1,
  exp: 2,
  data: { id },
});

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
export async function until(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** {@link until} for an asynchronous check (a lookup through the engine). */
export async function untilAsync(
  check: () => Promise<boolean>,
  what: string,
  timeoutMs = 5000,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** A node of a bus test: its bus and the sink it delivers to. */
export interface BusNode {
  bus: Bus;
  sink: Sink;
}

/** Attaches a device on a node and waits until its presence is confirmed (it asks for a catch-up). */
export async function attach(node: BusNode, device: string, session: string) {
  node.sink.held.add(device);
  const before = node.sink.resyncs.length;
  node.bus.attached(device, session);
  await until(() => node.sink.resyncs.length > before, 'presence confirmed');
}

/**
 * Routing, fan-out, commands and presence every cluster {@link Bus} keeps, through the interface;
 * `nodes(n)` gives n fresh nodes sharing one engine (closed by the caller's afterEach).
 */
export function busContract(nodes: (n: number) => Promise<BusNode[]>): void {
  it('routes a device entry to the node holding the device, and nowhere when it is offline', async () => {
    const [a, b, c] = await nodes(3);
    await attach(b!, 'dev1', 's1');
    await attach(c!, 'dev3', 's3');
    expect(b!.sink.resyncs).toContainEqual({ device: 'dev1' });
    // A marker for c's device in the same call, sent after m1 and m2 in one batch (Redis: one
    // connection; PostgreSQL: one statement, one transaction): when c has it, anything this call
    // sent c (m2 to a wrong node) has arrived too.
    a!.bus.route([entry('m1', 'd:dev1'), entry('m2', 'd:nobody'), entry('mc', 'd:dev3')]);
    await until(() => b!.sink.entries.length === 1 && c!.sink.entries.length === 1, 'm1 on b, mc on c');
    // And a marker after m1 on b's inbox, sent once m1 is in (so after it, also on PostgreSQL,
    // which delivers in commit order): a second copy of m1, or m2, would come before it.
    a!.bus.route([entry('mb', 'd:dev1', 2)]);
    await until(() => b!.sink.entries.length === 2, 'mb on b');
    expect(b!.sink.ids()).toEqual(['m1', 'mb']);
    expect(c!.sink.ids()).toEqual(['mc']);
    expect(a!.sink.entries).toEqual([]);
    expect(await a!.bus.isOnline('dev1')).toBe(true);
    expect(await a!.bus.isOnline('nobody')).toBe(false);
  });

  it('hands entries of local devices over in-process, without the engine', async () => {
    const [a] = await nodes(1);
    a!.sink.held.add('dev1'); // no presence in the engine at all
    a!.bus.route([entry('m1', 'd:dev1')]);
    expect(a!.sink.ids()).toEqual(['m1']); // synchronously
  });

  it('fans a topic entry out to exactly the nodes that follow it, once each', async () => {
    const [a, b, c] = await nodes(3);
    b!.bus.followed('t:news');
    c!.bus.followed('t:news');
    await until(() => b!.sink.resyncs.length + c!.sink.resyncs.length === 2, 'subscriptions confirmed');
    expect(b!.sink.resyncs).toEqual([{ stream: 't:news' }]);
    a!.bus.route([entry('m1', 't:news')]);
    b!.bus.route([entry('m2', 't:news', 2)]);
    await until(() => b!.sink.entries.length === 2 && c!.sink.entries.length === 2, 'fan-out');
    // The engine took b's m2 before c got it; a marker a sends now reaches b after b's own m2 came
    // back through the engine (and was dropped), and reaches each node after any second copy.
    a!.bus.route([entry('mk', 't:news', 3)]);
    await until(() => b!.sink.entries.length === 3 && c!.sink.entries.length === 3, 'the marker');
    expect(b!.sink.ids().sort()).toEqual(['m1', 'm2', 'mk']); // m2 locally, not again through the engine
    expect(c!.sink.ids().sort()).toEqual(['m1', 'm2', 'mk']);
    // The publisher without followers still offers it locally (its hub finds nobody).
    expect(a!.sink.ids()).toEqual(['m1', 'mk']);

    c!.bus.unfollowed('t:news');
    // Barrier, not a sleep: c follows another topic; both engines (un)subscribe on c's one
    // listening connection, in order, and ask for a catch-up once subscribed, so when the
    // catch-up for t:other comes, the unsubscribe from t:news is done.
    const resyncs = c!.sink.resyncs.length;
    c!.bus.followed('t:other');
    await until(
      () => c!.sink.resyncs.slice(resyncs).some((r) => r && 'stream' in r && r.stream === 't:other'),
      't:other subscribed on c',
    );
    // m3 on the topic, then a marker for c's own device in the same call (topic first, one
    // connection or one transaction): c has the marker, so m3 would have reached c before it
    // had c still been subscribed.
    await attach(c!, 'devc', 'sc');
    a!.bus.route([entry('m3', 't:news', 4), entry('mc', 'd:devc')]);
    await until(() => b!.sink.ids().includes('m3') && c!.sink.ids().includes('mc'), 'm3 on b, mc on c');
    expect(c!.sink.ids()).not.toContain('m3');
  });

  it('routes device commands to the holder, and tells an older holder its session was replaced', async () => {
    const [a, b] = await nodes(2);
    await attach(a!, 'dev1', 'old');
    a!.bus.send('dev1', { t: 'follow', topic: 'x', seq: 0 }); // local: applied at once
    expect(a!.sink.commands).toEqual([['dev1', { t: 'follow', topic: 'x', seq: 0 }]]);
    b!.bus.send('dev1', { t: 'unfollow', topic: 'x' });
    await until(() => a!.sink.commands.length === 2, 'command on a');
    expect(a!.sink.commands[1]).toEqual(['dev1', { t: 'unfollow', topic: 'x' }]);

    await attach(b!, 'dev1', 'new');
    await until(() => a!.sink.commands.length === 3, 'replaced on a');
    expect(a!.sink.commands[2]).toEqual(['dev1', { t: 'replaced', session: 'old' }]);
    // The old session's close (its hub detaches it) must not remove the new presence.
    a!.sink.held.delete('dev1');
    await attach(a!, 'probe', 'p');
    a!.bus.detached('dev1', 'old');
    // Barrier, not a sleep: a probe session on a closes after the old one; once its presence is
    // gone, a's presence drop for the old session was sent before it (Redis: same connection, in
    // order, so done; PostgreSQL: issued first on a's pool, which may run the two DELETEs on two
    // connections — ordered in practice, not guaranteed).
    a!.bus.detached('probe', 'p');
    await untilAsync(async () => !(await a!.bus.isOnline('probe')), 'probe offline');
    expect(await a!.bus.isOnline('dev1')).toBe(true); // the new presence stands
    a!.bus.route([entry('m1', 'd:dev1')]);
    await until(() => b!.sink.entries.length === 1, 'm1 on b');
  });
}
