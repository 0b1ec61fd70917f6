import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ResolvedOptions } from '../config.js';
import { HttpError } from '../errors.js';
import type { ApiKeyRecord, Scope } from '../store/api-keys.js';
import { sha256 } from '../util/ids.js';
import { TokenBucket } from '../util/token-bucket.js';

/**
 * Who sent a request: an API key (an admin key of the configuration, or a scoped key of the
 * store), or a device with its own credential (routes that allow it, see device-auth.ts).
 */
export interface Principal {
  /** The key's id (`config` for an admin key of the configuration), or the device id. */
  id: string;
  scopes: ReadonlySet<Scope>;
  /** The stored key (absent for a configured admin key and for devices). */
  key?: ApiKeyRecord;
  /** Set when a device authenticated with its own token. */
  device?: string;
}

const WWW = { 'WWW-Authenticate': 'Bearer' };
/** What `newScopedKey` makes: `pwk_` and 32 bytes in base64url. */
const SCOPED_KEY = /^pwk_[A-Za-z0-9_-]{43}$/;
const ALL: ReadonlySet<Scope> = new Set(['admin', 'publish', 'register', 'status']);
/** A key's last use is written at most this often per node. */
const TOUCH_EVERY_MS = 60_000;
/** Rate-limited keys whose bucket this node remembers (least recently created are dropped first). */
const MAX_BUCKETS = 10_000;

const principals = new WeakMap<FastifyRequest, Principal>();
const accesses = new WeakMap<ResolvedOptions, Access>();

/** The principal an `onRequest` hook of {@link Access} admitted. */
export function principalOf(req: FastifyRequest): Principal {
  const p = principals.get(req);
  if (!p) throw new HttpError(401, 'UNAUTHORIZED', 'not authenticated', WWW);
  return p;
}

/** @internal Records the principal of a request (device-auth.ts). */
export function setPrincipal(req: FastifyRequest, p: Principal): void {
  principals.set(req, p);
}

/** The one {@link Access} of a server's options (created on first use). */
export function accessOf(opts: ResolvedOptions): Access {
  let a = accesses.get(opts);
  if (!a) {
    a = new Access(opts);
    accesses.set(opts, a);
  }
  return a;
}

/**
 * API key checks. A key is looked up in the store on every request, never cached, so a key
 * revoked on one node is refused by every node at its next request. Keys with a rate have a
 * token bucket per node (rate per second, burst one second's worth).
 */
export class Access {
  private readonly buckets = new Map<string, TokenBucket>();
  private readonly touched = new Map<string, number>();
  /** Told the id of a key revoked through this node's API (long-lived connections close at once). */
  readonly onRevoked = new Set<(keyId: string) => void>();

  /** SHA-256 of each configured admin key: a request's key is hashed once and compared to each. */
  private readonly configDigests: Buffer[];
  /** The one principal of every configured admin key (read-only: shared by their requests). */
  private readonly configPrincipal: Principal = Object.freeze({ id: 'config', scopes: ALL });

  constructor(private readonly opts: ResolvedOptions) {
    this.configDigests = opts.apiKeys.map((k) => createHash('sha256').update(k).digest());
  }

  /** The principal of `Authorization: Bearer KEY`; 401 for a missing, unknown or revoked key. */
  async authenticate(header: string | undefined): Promise<Principal> {
    const key = header?.startsWith('Bearer ') ? header.slice(7).trim() : '';
    if (!key)
      throw new HttpError(401, 'UNAUTHORIZED', 'missing API key: send Authorization: Bearer KEY', WWW);
    if (this.isConfigKey(key)) return this.configPrincipal;
    // 256 random bits: one unsalted SHA-256 reveals nothing, and the lookup needs no comparison loop.
    // Only a string of a scoped key's shape costs a store read: garbage tokens cost nothing.
    const record = SCOPED_KEY.test(key) ? await this.opts.store.apiKeys?.byHash(sha256(key)) : undefined;
    if (!record) throw new HttpError(401, 'UNAUTHORIZED', 'wrong API key', WWW);
    if (record.revokedAt !== undefined)
      throw new HttpError(401, 'UNAUTHORIZED', 'this API key was revoked', WWW);
    this.limitKey(record);
    this.touch(record);
    return principalOfKey(record);
  }

  /**
   * The principal of a long-lived connection read again from the store (its key may have been
   * revoked, its scopes or targets changed since): undefined when the key is gone or revoked. A
   * configured admin key cannot be revoked and is returned as it is.
   */
  async refresh(p: Principal): Promise<Principal | undefined> {
    if (!p.key) return p;
    const record = await this.opts.store.apiKeys?.byHash(p.key.hash);
    if (!record || record.revokedAt !== undefined) return undefined;
    this.touch(record);
    return principalOfKey(record);
  }

  /** A key was revoked through this node: tell the listeners (other nodes re-check periodically). */
  revoked(keyId: string): void {
    for (const f of this.onRevoked) f(keyId);
  }

  /** 429 when the principal's key is over its rate (one use: a request, or one streamed message). */
  limit(p: Principal): void {
    if (p.key) this.limitKey(p.key);
  }

  /** An `onRequest` hook: the request needs a key with `scope` (`admin` has every scope). */
  require(scope: Scope): (req: FastifyRequest) => Promise<void> {
    return async (req) => {
      const p = await this.authenticate(req.headers.authorization);
      principals.set(req, p);
      requireScope(p, scope);
    };
  }

  /**
   * {@link require} as a callback-style hook, for the hottest routes: a configured admin key (the
   * common case of a backend publishing) is admitted without a promise; a scoped key costs its
   * store read as usual.
   */
  requireHook(scope: Scope): CallbackHook {
    return (req, _reply, done) => {
      const header = req.headers.authorization;
      if (header?.startsWith('Bearer ') && this.isConfigKey(header.slice(7).trim())) {
        principals.set(req, this.configPrincipal);
        return done();
      }
      this.authenticate(header).then((p) => {
        principals.set(req, p);
        if (!p.scopes.has(scope)) return done(scopeError(scope));
        done();
      }, done);
    };
  }

  /** Whether `key` is one of the configured admin keys (constant time per key, by SHA-256). */
  private isConfigKey(key: string): boolean {
    if (this.configDigests.length === 0 || !key) return false;
    const digest = createHash('sha256').update(key).digest();
    let found = false;
    for (const d of this.configDigests) if (timingSafeEqual(d, digest)) found = true;
    return found;
  }

  /** An `onRequest` hook: any valid key (its scopes checked by the route). */
  any(): (req: FastifyRequest) => Promise<void> {
    return async (req) => {
      principals.set(req, await this.authenticate(req.headers.authorization));
    };
  }

  /** 429 when the key is over its rate. */
  private limitKey(k: ApiKeyRecord): void {
    if (!k.rate || !(k.rate > 0)) return;
    const now = this.opts.clock.now();
    let b = this.buckets.get(k.id);
    if (!b) {
      if (this.buckets.size >= MAX_BUCKETS) this.buckets.delete(this.buckets.keys().next().value!);
      b = new TokenBucket(k.rate, Math.max(1, k.rate), now);
      this.buckets.set(k.id, b);
    }
    const wait = b.take(now);
    if (wait > 0) throw rateLimited(`this key may make ${k.rate} requests/s`, wait);
  }

  private touch(k: ApiKeyRecord): void {
    const now = this.opts.clock.now();
    if (now - (this.touched.get(k.id) ?? 0) < TOUCH_EVERY_MS) return;
    if (this.touched.size >= MAX_BUCKETS) this.touched.clear();
    this.touched.set(k.id, now);
    this.opts.store.apiKeys?.touch(k.id, now).catch(() => {}); // best effort: never fails a request
  }
}

function principalOfKey(record: ApiKeyRecord): Principal {
  return {
    id: record.id,
    key: record,
    scopes: record.scopes.includes('admin') ? ALL : new Set(record.scopes),
  };
}

/** A callback-style Fastify hook. */
export type CallbackHook = (req: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) => void;

/** 403 naming the missing scope, unless the principal has it. */
export function requireScope(p: Principal, scope: Scope): void {
  if (!p.scopes.has(scope)) throw scopeError(scope);
}

function scopeError(scope: Scope): HttpError {
  return new HttpError(403, 'FORBIDDEN', `this key lacks the "${scope}" scope`, {}, { scope });
}

/** 429 with `Retry-After` (seconds) and `retryAfter` (ms) in the JSON body. */
export function rateLimited(message: string, waitMs: number): HttpError {
  return new HttpError(
    429,
    'RATE_LIMITED',
    message,
    { 'Retry-After': String(Math.max(1, Math.ceil(waitMs / 1000))) },
    { retryAfter: waitMs },
  );
}

/**
 * The old `onRequest` hook: admits only a key with the `admin` scope (kept for callers that add
 * operator routes).
 */
export function adminAuth(opts: ResolvedOptions): (req: FastifyRequest) => Promise<void> {
  return accessOf(opts).require('admin');
}
