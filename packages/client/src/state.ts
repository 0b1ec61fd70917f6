/**
 * The connection state machine, as data.
 *
 * ```
 *          start                welcome
 *   idle ─────────▶ connecting ─────────▶ open
 *                    ▲  │   ▲               │
 *                    │  │   └───────────────┤ networkChanged()
 *     retry timer /  │  │ failure           │ socket lost, pong timeout, goaway, fatal server error
 *     networkChanged │  ▼                   │
 *     / wake()       backoff ◀──────────────┘      (offline: backoff waits without a timer)
 *
 *   any state ── close() / UNAUTHORIZED / UNSUPPORTED_VERSION / fatal config ──▶ closed
 * ```
 *
 * `connecting` covers loading storage, registering if needed, opening the socket and the
 * hello/welcome handshake. `connecting → connecting` is a restart (networkChanged during a
 * connect) and emits no event.
 */
export type ConnectionState = 'idle' | 'connecting' | 'open' | 'backoff' | 'closed';

/** Payload of the `state` event. */
export interface StateChange {
  from: ConnectionState;
  to: ConnectionState;
}

/** Allowed transitions; anything else is a bug. */
export const TRANSITIONS: Readonly<Record<ConnectionState, readonly ConnectionState[]>> = {
  idle: ['connecting', 'closed'],
  connecting: ['open', 'backoff', 'closed'],
  open: ['backoff', 'connecting', 'closed'],
  backoff: ['connecting', 'closed'],
  closed: [],
};

/** Whether `from → to` is a transition of the machine. */
export function canTransition(from: ConnectionState, to: ConnectionState): boolean {
  return TRANSITIONS[from].includes(to);
}
