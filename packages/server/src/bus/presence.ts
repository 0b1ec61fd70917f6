import type { BusKeys, BusRedis } from './redis-conn.js';

/** Presence keys and TTL refreshed per third of it; see {@link Presence}. */
export interface PresenceOptions {
  cmd: BusRedis;
  keys: BusKeys;
  nodeId: string;
  ttlMs: number;
  /** A session of this node was taken over: by a newer one elsewhere, or found so at a refresh. */
  replaced(deviceId: string, sessionId: string): void;
  /** An older session of the device is open on `node`: tell it to close it. */
  kick(node: string, deviceId: string, sessionId: string): Promise<void>;
}

/** Presence refreshes sent per round trip. */
const CHUNK = 500;

/**
 * Which devices this node holds, mirrored in Redis: `{d:<id>}:at` = "<node> <session>" with a TTL
 * the node refreshes, so a dead node's devices vanish from presence within one TTL. Keys are only
 * ever changed by scripts that check the value, so a node never overwrites or deletes the presence
 * of a newer session elsewhere.
 */
export class Presence {
  /** Devices held here → our presence value. */
  private readonly held = new Map<string, string>();
  private refreshing = false;

  constructor(private readonly o: PresenceOptions) {}

  /** Records a new session and takes the key over; resolves once Redis has it. */
  async attach(deviceId: string, sessionId: string): Promise<void> {
    const value = `${this.o.nodeId} ${sessionId}`;
    this.held.set(deviceId, value);
    const old = await this.o.cmd.set(this.o.keys.presence(deviceId), value, 'PX', this.o.ttlMs, 'GET');
    const [node, session] = old?.split(' ') ?? [];
    if (node && session && node !== this.o.nodeId) await this.o.kick(node, deviceId, session);
  }

  /** The session closed: forget it, and delete the key if it is still ours (else it expires). */
  detach(deviceId: string, sessionId: string): void {
    const value = `${this.o.nodeId} ${sessionId}`;
    if (this.held.get(deviceId) !== value) return;
    this.held.delete(deviceId);
    this.o.cmd.pwPresenceDrop(this.o.keys.presence(deviceId), value).catch(() => {});
  }

  /** Refreshes (or sets again, after Redis lost it) every key of this node, in chunks. */
  async refresh(): Promise<void> {
    if (this.refreshing) return;
    this.refreshing = true;
    try {
      const all = [...this.held];
      for (let i = 0; i < all.length; i += CHUNK) {
        const chunk = all.slice(i, i + CHUNK);
        const kept = await Promise.all(
          chunk.map(([device, value]) =>
            this.o.cmd.pwPresenceRefresh(this.o.keys.presence(device), value, this.o.ttlMs),
          ),
        );
        kept.forEach((ok, j) => {
          const [device, value] = chunk[j]!;
          if (ok === 0 && this.held.get(device) === value) this.o.replaced(device, value.split(' ')[1]!);
        });
      }
    } finally {
      this.refreshing = false;
    }
  }

  /** Deletes every key of this node (graceful shutdown), best effort. */
  async clear(): Promise<void> {
    const drops = [...this.held].map(([device, value]) =>
      this.o.cmd.pwPresenceDrop(this.o.keys.presence(device), value).catch(() => {}),
    );
    this.held.clear();
    await Promise.all(drops);
  }

  async isOnline(deviceId: string): Promise<boolean> {
    return (await this.o.cmd.exists(this.o.keys.presence(deviceId))) === 1;
  }
}

/** The node named by a presence value. */
export function holderOf(value: string | null): string | undefined {
  return value ? value.split(' ')[0] : undefined;
}
