import { randomBytes } from 'node:crypto';
import { deviceStream } from '@pushwire/protocol';
import { Session } from '../gateway/session.js';
import { textFrame } from '../gateway/wire/frames.js';
import { type WireListener, WireSocket } from '../gateway/wire/socket.js';
import type { StoredEntry } from '../store/types.js';
import { nextSessionNumber, sha256, tokenMatches } from '../util/ids.js';
import { isP256Key, mintSubscription } from '../webpush/routes.js';
import {
  AutopushProtocolError,
  type ClientMessage,
  decodeClientMessage,
  helloReply,
  notificationMessage,
  PONG,
  registerReply,
  UAID_PATTERN,
  unregisterReply,
} from './codec.js';
import type { AutopushService } from './host.js';
import { Inflight } from './inflight.js';

/** Messages a client may have waiting for the previous one to be handled before it is closed. */
const MAX_QUEUED = 32;
/** Close code telling Firefox to come back later (RFC 6455 "Try Again Later"). */
const TRY_AGAIN_LATER = 1013;

/** The Pushwire device of a uaid: the uaid is the device's credential, so its id is derived, not equal. */
export const deviceIdOfUaid = (uaid: string): string => `ap-${sha256(`autopush:${uaid}`).slice(0, 32)}`;
/** Subscription ids of an autopush device: a tag of the device, then the channel id. */
const subIdOf = (deviceId: string, channelID: string) => `${deviceId.slice(3, 19)}_${channelID}`;

type Phase = 'hello' | 'joining' | 'open' | 'closed';

/** One autopush socket: the handshake, then the client's requests in order. */
export class Connection implements WireListener {
  wheelSlot = -1;
  private phase: Phase = 'hello';
  private lastActivity: number;
  private chain: Promise<void> = Promise.resolve();
  private queued = 0;
  private session: Session | undefined;
  private deviceId = '';
  private uaid = '';
  /** The device exists in the store (a new uaid gets its device at its first register). */
  private created = false;
  private inflight = new Inflight(0);
  private addressHeld = true;

  constructor(
    private readonly service: AutopushService,
    private readonly ws: WireSocket,
    private readonly address: string,
    private readonly base: string,
    now: number,
  ) {
    this.lastActivity = now;
  }

  deadline(): number | undefined {
    if (this.phase === 'closed') return undefined;
    const { opts } = this.service.deps;
    if (this.phase !== 'open') return this.lastActivity + opts.handshakeTimeoutMs;
    const idle = this.lastActivity + this.service.idleMs;
    const blocked = this.session?.blockedSince;
    return blocked === undefined ? idle : Math.min(idle, blocked + opts.slowConsumerTimeoutMs);
  }

  expire(now: number): void {
    const blocked = this.session?.blockedSince;
    if (blocked !== undefined && blocked + this.service.deps.opts.slowConsumerTimeoutMs <= now) {
      return this.session?.dropSlow();
    }
    this.close(1000, this.phase === 'open' ? 'IDLE_TIMEOUT' : 'HANDSHAKE_TIMEOUT');
  }

  onMessage(data: Buffer, binary: boolean): void {
    if (this.phase === 'closed') return;
    this.lastActivity = this.service.deps.opts.clock.now();
    if (this.session) this.session.lastActivity = this.lastActivity;
    if (binary) return this.protocolError(new AutopushProtocolError('BAD_MESSAGE', 'messages are JSON text'));
    let msg: ClientMessage;
    try {
      msg = decodeClientMessage(data.toString('utf8'));
    } catch (err) {
      if (err instanceof AutopushProtocolError) return this.protocolError(err);
      throw err;
    }
    if (msg.messageType === 'ping' && this.phase === 'open') {
      this.session?.flushHeld();
      return this.ws.send(PONG);
    }
    if (++this.queued > MAX_QUEUED) return this.close(1008, 'TOO_MANY_REQUESTS');
    this.chain = this.chain.then(async () => {
      this.queued--;
      if (this.phase === 'closed') return;
      try {
        await this.handle(msg);
      } catch (err) {
        this.service.deps.log?.error({ err }, 'autopush request failed');
        this.close(1011, 'INTERNAL');
      }
    });
  }

  onClose(): void {
    if (this.phase === 'closed') return;
    this.phase = 'closed';
    this.service.connections.delete(this);
    this.releaseAddress();
    const s = this.session;
    if (s) {
      s.closed = true;
      this.service.deps.hub.detach(s);
      s.resolveClosed();
      this.service.bySession.delete(s);
      const { store, clock } = this.service.deps.opts;
      if (this.created) void store.touchDevice(this.deviceId, clock.now()).catch(() => {});
    }
  }

  /** The frame of a stored entry for this client, or undefined when it is not one of its channels. */
  encode(entry: StoredEntry): Buffer | undefined {
    const wp = (entry.data as { webpush?: { sub?: unknown; body?: unknown; plain?: unknown } } | undefined)
      ?.webpush;
    const tag = `${this.deviceId.slice(3, 19)}_`;
    if (typeof wp?.sub !== 'string' || !wp.sub.startsWith(tag)) {
      this.inflight.skipped(entry.seq);
      return undefined;
    }
    const version = entry.id;
    this.inflight.sent(version, entry.seq);
    return textFrame(
      notificationMessage({
        channelID: wp.sub.slice(tag.length),
        version,
        ttl: Math.max(0, Math.round((entry.exp - entry.ts) / 1000)),
        ...(typeof wp.body === 'string' && { data: wp.body }),
        ...(wp.plain === true && { plain: true }),
      }),
    );
  }

  private releaseAddress(): void {
    if (!this.addressHeld) return;
    this.addressHeld = false;
    this.service.releaseAddress(this.address);
  }

  private protocolError(err: AutopushProtocolError): void {
    this.service.counters.protocolErrors++;
    this.close(1002, err.code);
  }

  private close(code: number, reason: string): void {
    if (this.phase === 'closed') return;
    if (this.session) this.session.close(code, reason);
    else this.ws.close(code, reason);
  }

  private async handle(msg: ClientMessage): Promise<void> {
    if (this.phase === 'hello') {
      if (msg.messageType !== 'hello')
        return this.protocolError(new AutopushProtocolError('HELLO_REQUIRED', 'first message must be hello'));
      return this.hello(msg);
    }
    switch (msg.messageType) {
      case 'hello':
        return this.protocolError(new AutopushProtocolError('BAD_MESSAGE', 'hello was already sent'));
      case 'register':
        return this.register(msg.channelID, msg.key);
      case 'unregister':
        return this.unregister(msg.channelID);
      case 'ack':
        return this.ack(msg.updates.map((u) => u.version));
      case 'nack':
        this.service.counters.nacks++;
        return;
      case 'ping':
        return this.ws.send(PONG);
      case 'broadcast_subscribe':
        return; // no broadcasts are published by this server
    }
  }

  private async hello(msg: Extract<ClientMessage, { messageType: 'hello' }>): Promise<void> {
    const { opts, hub, log } = this.service.deps;
    this.phase = 'joining';
    this.releaseAddress();
    let cursors: Record<string, number> = {};
    const known = msg.uaid !== undefined && UAID_PATTERN.test(msg.uaid) ? msg.uaid : undefined;
    const device = known === undefined ? undefined : await opts.store.getDevice(deviceIdOfUaid(known));
    if (known !== undefined && device && tokenMatches(device.tokenHash, known)) {
      const wait = this.service.admit();
      if (wait > 0) return this.close(TRY_AGAIN_LATER, 'RATE_LIMITED');
      this.uaid = known;
      this.created = true;
    } else {
      if (!this.service.takeAnonymous(this.address)) {
        log?.debug({ address: this.address }, 'autopush hello refused: per-address limit');
        return this.close(TRY_AGAIN_LATER, 'RATE_LIMITED');
      }
      this.uaid = randomBytes(16).toString('hex');
    }
    this.deviceId = deviceIdOfUaid(this.uaid);
    if (this.ws.readyState !== WireSocket.OPEN) return;
    hub.beginJoin(this.deviceId);
    try {
      if (this.created) cursors = await opts.store.cursorsOf(this.deviceId);
      if (this.ws.readyState !== WireSocket.OPEN) return;
      const stream = deviceStream(this.deviceId);
      const session = new Session(
        nextSessionNumber(),
        this.deviceId,
        this.ws,
        this.service.host,
        opts.clock.now(),
      );
      this.session = session;
      this.inflight = new Inflight(cursors[stream] ?? 0);
      this.service.bySession.set(session, this);
      this.ws.send(helloReply(this.uaid));
      this.phase = 'open';
      this.service.counters.sessions++;
      hub.attach(session, [], { [stream]: cursors[stream] ?? 0 });
      this.service.refile(this);
      if (this.created) opts.store.touchDevice(this.deviceId, opts.clock.now()).catch(() => {});
    } finally {
      hub.endJoin(this.deviceId);
    }
  }

  private async ensureDevice(): Promise<void> {
    if (this.created) return;
    const { opts } = this.service.deps;
    const now = opts.clock.now();
    await opts.store.createDevice({
      id: this.deviceId,
      tokenHash: sha256(this.uaid),
      createdAt: now,
      lastSeen: now,
    });
    this.created = true;
    this.service.counters.devicesCreated++;
  }

  private async register(channelID: string, rawKey: string | undefined): Promise<void> {
    const { opts, registry } = this.service.deps;
    const key = rawKey?.replace(/=+$/, '');
    if (key !== undefined && !isP256Key(key)) return this.ws.send(registerReply(channelID, 400));
    const subId = subIdOf(this.deviceId, channelID);
    if (this.created) {
      if (await registry.byId(subId)) return this.ws.send(registerReply(channelID, 409));
      if ((await registry.listByDevice(this.deviceId)).length >= this.service.maxSubscriptions)
        return this.ws.send(registerReply(channelID, 429));
    } else if (await registry.byId(subId)) {
      return this.ws.send(registerReply(channelID, 409));
    }
    await this.ensureDevice();
    const { record, capability } = mintSubscription(this.deviceId, opts.clock.now(), key, subId);
    await registry.create(record);
    this.service.counters.registrations++;
    this.ws.send(registerReply(channelID, 200, `${this.base}/wp/${capability}`));
  }

  private async unregister(channelID: string): Promise<void> {
    const { opts, registry } = this.service.deps;
    if (this.created) {
      const sub = await registry.byId(subIdOf(this.deviceId, channelID));
      if (sub && sub.deviceId === this.deviceId && sub.revokedAt === undefined) {
        await registry.revoke(sub.id, opts.clock.now());
        this.service.counters.unregistrations++;
      }
    }
    // Autopush answers 200 for a channel it does not know too: the client's goal is reached.
    this.ws.send(unregisterReply(channelID, 200));
  }

  private ack(versions: string[]): void {
    const { opts, hub, log } = this.service.deps;
    let n = 0;
    for (const v of versions) if (this.inflight.ack(v)) n++;
    this.service.counters.acks += n;
    hub.counters.acked += n;
    const cursor = this.inflight.advance();
    if (cursor === undefined || !this.created) return;
    opts.store.ack(this.deviceId, { [deviceStream(this.deviceId)]: cursor }).catch((err) => {
      log?.error({ err }, 'autopush ack failed');
    });
  }
}
