import type { StoredEntry } from '../store/types.js';
import type { Bus, BusSink, DeviceCommand } from './types.js';

/**
 * The bus of a single node: every session is local, so new entries and commands go straight to
 * the hub, synchronously, with nothing to lose in between.
 */
export class LocalBus implements Bus {
  readonly healthy = true;
  private sink: BusSink | undefined;

  constructor(readonly nodeId = 'local') {}

  bind(sink: BusSink): void {
    this.sink = sink;
  }

  route(entries: StoredEntry[]): void {
    if (entries.length > 0) this.sink?.dispatch(entries);
  }

  send(deviceId: string, cmd: DeviceCommand): void {
    this.sink?.command(deviceId, cmd);
  }

  attached(): void {}
  detached(): void {}
  followed(): void {}
  unfollowed(): void {}

  /** Only the hub knows local sessions, and it asks it first. */
  async isOnline(): Promise<boolean> {
    return false;
  }

  async close(): Promise<void> {}
}
