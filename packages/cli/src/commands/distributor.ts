import type { MessageFrame } from '@pushwire/protocol';
import { callConnector, exportDistributor, openBus, Variant } from '../distributor/bus.js';
import { PushwireLink } from '../distributor/link.js';
import { isToken, parseRegister, stringArg } from '../distributor/spec.js';
import { type DistributorState, loadState, type Registration, saveState } from '../distributor/state.js';
import { CommandError, EXIT, type ExitStatus } from '../exit.js';
import { ApiError, api, checkServerUrl } from '../http.js';
import type { FlagsOf, OptionTable } from '../options.js';

/** The options of `pushwire distributor`. */
export const DISTRIBUTOR_OPTIONS = {
  server: {
    flag: '--server',
    arg: '<url>',
    help: 'server base URL, e.g. https://push.example.com',
    required: true,
    env: 'PUSHWIRE_SERVER',
  },
  apiKey: {
    flag: '--api-key',
    arg: '<key>',
    help: 'API key, to register this machine as a device on first run',
    env: 'PUSHWIRE_API_KEY',
  },
  state: {
    flag: '--state',
    arg: '<file>',
    help: 'state file: device credentials, cursor, registered apps',
    required: true,
  },
  bus: {
    flag: '--bus',
    arg: '<session|address>',
    help: 'the D-Bus to serve on: the session bus, or a D-Bus address',
    default: 'session',
  },
} as const satisfies OptionTable;

type DistributorFlags = FlagsOf<typeof DISTRIBUTOR_OPTIONS>;

const log = (text: string) => process.stderr.write(`pushwire distributor: ${text}\n`);

/** Attempts to hand a message to an app before it is given up (the app is not running, not activatable). */
const DELIVERY_ATTEMPTS = 3;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The device of this machine: from the state file, or registered with the API key on first run. */
async function ensureState(f: DistributorFlags): Promise<DistributorState> {
  const saved = loadState(f.state);
  if (saved) return saved;
  if (!f.apiKey)
    throw new CommandError('NO_DEVICE', `${f.state} holds no device yet: give --api-key to register one`);
  let d: { deviceId: string; token: string };
  try {
    d = await api(f.server, f.apiKey, 'POST', '/v1/devices', {});
  } catch (err) {
    // Like `listen`: a registration that fails stops the command (exit status 1), with the cause.
    if (err instanceof ApiError)
      throw new CommandError(
        'REGISTRATION_FAILED',
        `registration failed (${err.message}): check --api-key and --server`,
      );
    throw err;
  }
  const state: DistributorState = {
    server: f.server,
    deviceId: d.deviceId,
    token: d.token,
    cursor: 0,
    registrations: {},
    revokeLater: [],
  };
  saveState(f.state, state);
  return state;
}

/**
 * `pushwire distributor`: a UnifiedPush D-Bus distributor for this machine. Apps register through
 * `org.unifiedpush.Distributor2` on the bus; each registration is a Web Push subscription of one
 * Pushwire device; one Pushwire session carries every app's pushes, each handed to its app with
 * `org.unifiedpush.Connector2.Message` exactly as the sender posted it.
 *
 * Resolves when it has stopped: 0 after SIGINT/SIGTERM, 1 when the server refuses the device.
 */
export async function distributorCommand(f: DistributorFlags): Promise<ExitStatus> {
  checkServerUrl(f.server);
  const state = await ensureState(f);
  const server = f.server;
  const auth = `Device ${state.deviceId}:${state.token}`;
  const bus = openBus(f.bus);
  const save = () => saveState(f.state, state);
  /** Registrations change one at a time (a token registered twice at once gets one subscription). */
  let ops: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const p = ops.then(fn, fn);
    ops = p.catch(() => {});
    return p;
  };

  const revokePending = async () => {
    for (const id of [...state.revokeLater]) {
      try {
        await api(server, auth, 'DELETE', `/v1/devices/${state.deviceId}/webpush/${id}`);
      } catch (err) {
        if (!(err instanceof ApiError) || err.status === 0 || err.status >= 500) return; // later
      }
      state.revokeLater = state.revokeLater.filter((x) => x !== id);
      save();
    }
  };

  const sendEndpoint = (token: string, reg: Registration) =>
    callConnector(bus, reg.service, 'NewEndpoint', {
      token: new Variant('s', token),
      endpoint: new Variant('s', reg.endpoint),
    }).catch((err: Error) => log(`NewEndpoint to ${reg.service} failed: ${err.message}`));

  await exportDistributor(bus, {
    register: (args) =>
      serial(async () => {
        const parsed = parseRegister(args);
        if (!parsed.ok) {
          log(`registration refused: ${parsed.why}`);
          return { ok: false, reason: parsed.reason };
        }
        const { service, token, description, vapid } = parsed.request;
        const known = state.registrations[token];
        if (known && known.service !== service) {
          log(`registration refused: token already used by another app`);
          return { ok: false, reason: 'INTERNAL_ERROR' };
        }
        if (known && known.vapid === vapid) {
          void sendEndpoint(token, known); // the app asks again for its endpoint (every start)
          return { ok: true };
        }
        let sub: { subscriptionId: string; endpoint: string };
        try {
          sub = await api(server, auth, 'POST', `/v1/devices/${state.deviceId}/webpush`, {
            ...(vapid !== undefined && { applicationServerKey: vapid }),
          });
        } catch (err) {
          log(`registration of ${service} failed: ${(err as Error).message}`);
          if (err instanceof ApiError && err.status === 0) return { ok: false, reason: 'NETWORK' };
          if (err instanceof ApiError && err.status === 409) return { ok: false, reason: 'ACTION_REQUIRED' };
          return { ok: false, reason: 'INTERNAL_ERROR' };
        }
        if (known) state.revokeLater.push(known.subscriptionId); // a new VAPID key: the old endpoint goes
        const reg: Registration = {
          service,
          subscriptionId: sub.subscriptionId,
          endpoint: sub.endpoint,
          ...(vapid !== undefined && { vapid }),
          ...(description !== undefined && { description }),
        };
        state.registrations[token] = reg;
        save();
        void revokePending();
        log(`registered ${service}`);
        void sendEndpoint(token, reg);
        return { ok: true };
      }),
    unregister: (args) =>
      serial(async () => {
        const token = stringArg(args, 'token');
        if (!isToken(token)) return;
        const reg = state.registrations[token];
        if (!reg) return;
        delete state.registrations[token];
        state.revokeLater.push(reg.subscriptionId);
        save();
        await revokePending();
        log(`unregistered ${reg.service}`);
        await callConnector(bus, reg.service, 'Unregistered', { token: new Variant('s', token) }).catch(
          (err: Error) => log(`Unregistered to ${reg.service} failed: ${err.message}`),
        );
      }),
  });

  const deliver = async (msg: MessageFrame) => {
    const wp = (msg.data as { webpush?: { sub?: string; body?: string } } | undefined)?.webpush;
    const entry = Object.entries(state.registrations).find(([, r]) => r.subscriptionId === wp?.sub);
    if (entry) {
      const [token, reg] = entry;
      const bytes = typeof wp?.body === 'string' ? Buffer.from(wp.body, 'base64url') : Buffer.alloc(0);
      for (let attempt = 1; ; attempt++) {
        try {
          const r = await callConnector(bus, reg.service, 'Message', {
            token: new Variant('s', token),
            message: new Variant('ay', bytes),
            id: new Variant('s', msg.id),
          });
          if (r.timedOut) log(`${reg.service} did not answer Message ${msg.id}: counted as handed over`);
          break;
        } catch (err) {
          if (attempt >= DELIVERY_ATTEMPTS) {
            log(`message ${msg.id} to ${reg.service} dropped: ${(err as Error).message}`);
            break;
          }
          await sleep(1000 * attempt);
        }
      }
    }
    // Handled (or not for any app here): the cursor moves before the ack, so a restart resumes after it.
    state.cursor = msg.seq;
    save();
  };

  let finish!: (status: ExitStatus) => void;
  const finished = new Promise<ExitStatus>((resolve) => {
    finish = resolve;
  });
  const link = new PushwireLink(server, state.deviceId, state.token, {
    onMessage: deliver,
    cursor: () => state.cursor,
    onState: (s, detail) => {
      log(detail ? `${s} (${detail})` : s);
      if (s === 'open') void revokePending();
    },
    onFatal: (code, message) => {
      log(`the server refused this device (${code}: ${message}); remove ${f.state} to register again`);
      finish(EXIT.FAILURE);
    },
  });
  link.start();
  log(`ready: ${Object.keys(state.registrations).length} app(s) registered, device ${state.deviceId}`);

  const stop = () => {
    link.stop().then(
      () => {
        bus.disconnect();
        finish(EXIT.OK);
      },
      () => finish(EXIT.FAILURE),
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  return finished;
}
