import dbus, { Message, type MessageBus, Variant } from 'dbus-next';
import {
  CONNECTOR_INTERFACE,
  CONNECTOR_PATH,
  DISTRIBUTOR_INTERFACE,
  DISTRIBUTOR_NAME,
  DISTRIBUTOR_PATH,
  type FailureReason,
} from './spec.js';

/** What the D-Bus side asks of the distributor. */
export interface DistributorHandlers {
  register(args: Record<string, unknown>): Promise<{ ok: true } | { ok: false; reason: FailureReason }>;
  unregister(args: Record<string, unknown>): Promise<void>;
}

/** How long a call to an app's connector may take before it counts as failed. */
const CALL_TIMEOUT_MS = 10_000;

class DistributorInterface extends dbus.interface.Interface {
  constructor(private readonly handlers: DistributorHandlers) {
    super(DISTRIBUTOR_INTERFACE);
  }

  async Register(args: Record<string, unknown>): Promise<Record<string, Variant>> {
    const r = await this.handlers.register(args ?? {});
    return r.ok
      ? { success: new Variant('s', 'REGISTRATION_SUCCEEDED') }
      : { success: new Variant('s', 'REGISTRATION_FAILED'), reason: new Variant('s', r.reason) };
  }

  async Unregister(args: Record<string, unknown>): Promise<Record<string, Variant>> {
    await this.handlers.unregister(args ?? {});
    return {};
  }
}
DistributorInterface.configureMembers({
  methods: {
    Register: { inSignature: 'a{sv}', outSignature: 'a{sv}' },
    Unregister: { inSignature: 'a{sv}', outSignature: 'a{sv}' },
  },
});

/** Opens the session bus (`session`) or the bus at a D-Bus address. */
export function openBus(bus: string): MessageBus {
  return bus === 'session' ? dbus.sessionBus() : dbus.sessionBus({ busAddress: bus });
}

/**
 * Owns `org.unifiedpush.Distributor.pushwire` and exports `org.unifiedpush.Distributor2` at
 * `/org/unifiedpush/Distributor`. Throws when another process holds the name.
 */
export async function exportDistributor(bus: MessageBus, handlers: DistributorHandlers): Promise<void> {
  bus.export(DISTRIBUTOR_PATH, new DistributorInterface(handlers));
  const reply = await bus.requestName(DISTRIBUTOR_NAME, dbus.NameFlag.DO_NOT_QUEUE);
  if (reply !== dbus.RequestNameReply.PRIMARY_OWNER && reply !== dbus.RequestNameReply.ALREADY_OWNER)
    throw new Error(`${DISTRIBUTOR_NAME} is owned by another process on this bus`);
}

/**
 * Calls a method of an app's `org.unifiedpush.Connector2` (D-Bus activation starts the app if
 * needed). Resolves once the app answered, or after {@link CALL_TIMEOUT_MS} without an answer (the
 * spec tells distributors not to wait for one: the call was delivered to the app's connection).
 * Rejects when the bus could not deliver it (no such app, not activatable) or the app answered
 * with an error. `timedOut` tells which.
 */
export async function callConnector(
  bus: MessageBus,
  service: string,
  method: 'Message' | 'NewEndpoint' | 'Unregistered',
  args: Record<string, Variant>,
): Promise<{ timedOut: boolean }> {
  const call = bus.call(
    new Message({
      destination: service,
      path: CONNECTOR_PATH,
      interface: CONNECTOR_INTERFACE,
      member: method,
      signature: 'a{sv}',
      body: [args],
    }),
  );
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), CALL_TIMEOUT_MS);
  });
  try {
    const r = await Promise.race([call, timeout]);
    return { timedOut: r === 'timeout' };
  } finally {
    clearTimeout(timer);
    call.catch(() => {}); // a late failure after the timeout is not reported
  }
}

export { Variant };
