/** What a key may do. `admin` implies every other scope. */
export type Scope = 'publish' | 'register' | 'status' | 'admin';

/** Every scope, in the order they are listed. */
export const SCOPES: readonly Scope[] = ['publish', 'register', 'status', 'admin'];

/**
 * An API key as stored: never the key itself, only its SHA-256 (hex). The key is a random string
 * of 192 bits, so one unsalted hash is enough: nothing can be guessed from it.
 */
export interface ApiKeyRecord {
  /** Public id (`key_…`): shown by `keys list`, used by `keys revoke`. Not a secret. */
  id: string;
  /** SHA-256 (hex) of the key. */
  hash: string;
  label?: string;
  scopes: Scope[];
  /** `publish`: topic patterns it may publish to (absent: any topic, unless users/devices restrict). */
  topics?: string[];
  /** `publish`: users it may target (absent: any, unless topics/devices restrict). */
  users?: string[];
  /** `publish`: devices it may target (absent: any, unless topics/users restrict). */
  devices?: string[];
  /** `register`: topic patterns the devices it registers may subscribe to (absent: none). */
  subscribe?: string[];
  /** Requests per second (token bucket, burst = one second's worth, at least 1); absent: no limit. */
  rate?: number;
  /** ms since epoch. */
  createdAt: number;
  /** Last time it authenticated a request (ms; updated at most once a minute per node). */
  lastUsed?: number;
  /** Set when revoked (ms); a revoked key authenticates nothing. */
  revokedAt?: number;
}

/**
 * Durable home of API keys, part of a {@link Store} (`store.apiKeys`). Lookups are not cached by
 * the server, so a revocation holds at once on every node that shares the store.
 */
export interface ApiKeyStore {
  /** Stores a new key; rejects with `STORE_INVALID` when its id or hash exists already. */
  create(key: ApiKeyRecord): Promise<void>;
  /** The key with this hash (revoked ones included: the caller refuses them). */
  byHash(hash: string): Promise<ApiKeyRecord | undefined>;
  /** Every key, revoked ones included, oldest first. */
  list(): Promise<ApiKeyRecord[]>;
  /** Marks the key revoked; false when there is no such key or it was revoked already. */
  revoke(id: string, at: number): Promise<boolean>;
  /** Records a use (best effort). */
  touch(id: string, at: number): Promise<void>;
}

/** The JSON stored for a key's optional fields (both engines keep the record as one JSON value). */
export function encodeApiKey(k: ApiKeyRecord): string {
  return JSON.stringify(k);
}

/** Parses a stored key; undefined for anything that is not one (a corrupt row authenticates nothing). */
export function decodeApiKey(text: string | null | undefined): ApiKeyRecord | undefined {
  if (!text) return undefined;
  try {
    const k = JSON.parse(text) as ApiKeyRecord;
    if (typeof k.id !== 'string' || typeof k.hash !== 'string' || !Array.isArray(k.scopes)) return undefined;
    return k;
  } catch {
    return undefined;
  }
}
