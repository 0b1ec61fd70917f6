/**
 * @packageDocumentation
 * Pushwire wire protocol v1: frame types and a pure codec shared by client and server.
 * No I/O. See docs/protocol.md.
 */

export * from './codec.js';
export * from './errors.js';
export * from './frames.js';
export * from './streams.js';
export * from './webpush-crypto.js';
