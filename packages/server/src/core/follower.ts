import type { ErrorCode } from '@pushwire/protocol';
import type { StoredEntry } from '../store/types.js';

/** The names of the streams a follower is delivered (a `Map` or `Set` of them qualifies). */
export interface FollowedStreams {
  has(stream: string): boolean;
  keys(): Iterable<string>;
}

/**
 * What the hub needs of a device's connection (the gateway's `Session` implements it): the
 * streams it follows, live hand-over of entries, catch-up from the store and closing it.
 */
export interface Follower {
  /** The session's id (unique per connection). */
  readonly id: string;
  readonly deviceId: string;
  /** The streams this follower is delivered, by name. */
  readonly streams: FollowedStreams;
  /** Declared heartbeat interval (s); 0 before the device declared one. */
  readonly heartbeat: number;
  /** Starts delivering a stream after `cursor`. */
  open(stream: string, cursor: number): void;
  /** Stops delivering a stream. */
  drop(stream: string): void;
  /** A live entry of a followed stream, with its frame as {@link FrameEncoder} made it (shared by all followers). */
  offer(entry: StoredEntry, frame: Buffer): void;
  /** Reads its streams (or one) again from the store; false when the store was unavailable. */
  catchUp(stream?: string): Promise<boolean>;
  /** Tells the device of an error; a fatal one closes the connection with `closeCode`. */
  fail(code: ErrorCode, message: string, fatal: boolean, closeCode?: number): void;
}

/**
 * Turns a stored entry into the bytes written to every follower of its stream (encoded and framed
 * once per entry). The gateway provides it; the hub is given it at construction.
 */
export type FrameEncoder = (entry: StoredEntry) => Buffer;
