import { spawn, spawnSync } from 'node:child_process';
import {
  createClient,
  fileStorage,
  type PushMessage,
  type PushwireClient,
  WebPushError,
  type WebPushSubscription,
} from '@pushwire/client/node';
import { CommandError, EXIT, type ExitStatus } from '../exit.js';
import { checkServerUrl } from '../http.js';
import { type FlagsOf, type OptionTable, repeatable } from '../options.js';

/** The options of `pushwire listen`. */
export const LISTEN_OPTIONS = {
  server: {
    flag: '--server',
    arg: '<urls>',
    help: 'server base URL, or several separated by commas (tried in turn on failure)',
    required: true,
    env: 'PUSHWIRE_SERVER',
  },
  apiKey: {
    flag: '--api-key',
    arg: '<key>',
    help: 'API key, to register on first run',
    env: 'PUSHWIRE_API_KEY',
  },
  state: {
    flag: '--state',
    arg: '<file>',
    help: 'state file: credentials, cursors, dedupe window',
    required: true,
  },
  user: { flag: '--user', arg: '<alias>', help: 'register the device for this user' },
  topic: {
    flag: '--topic',
    arg: '<name>',
    help: 'subscribe to a topic (repeatable)',
    parse: repeatable,
    default: [],
  },
  exec: {
    flag: '--exec',
    arg: '<cmd>',
    help: 'run a shell command per message, with the message JSON on stdin',
  },
  notify: { flag: '--notify', help: 'show a desktop notification per message (notify-send)' },
  heartbeat: {
    flag: '--heartbeat',
    arg: '<seconds|adaptive>',
    help: 'heartbeat interval in seconds, or "adaptive"',
    default: 'adaptive',
  },
  networkKey: {
    flag: '--network-key',
    arg: '<key>',
    help: 'name of the current network (adaptive heartbeat memory)',
  },
  webpush: {
    flag: '--webpush',
    help: 'take Web Push messages: print the subscription for your backend as the first line, decrypt each message',
  },
  vapidKey: {
    flag: '--vapid-key',
    arg: '<key>',
    help: "your backend's VAPID public key: bind the subscription to it (implies --webpush)",
  },
  rotateToken: {
    flag: '--rotate-token',
    help: 'rotate the device token once connected (also on SIGHUP); the state file keeps the new one',
  },
} as const satisfies OptionTable;

type ListenFlags = FlagsOf<typeof LISTEN_OPTIONS>;

const log = (text: string) => process.stderr.write(`pushwire listen: ${text}\n`);

/** An error's message with the chain of its causes (`fetch failed: connect ECONNREFUSED …`). */
function describe(err: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = err, depth = 0; e !== undefined && depth < 5; depth++) {
    if (e instanceof Error) {
      const code = (e as { code?: unknown }).code;
      const text = e.message || (typeof code === 'string' ? code : e.name);
      if (!parts.some((p) => p.includes(text))) parts.push(text);
      e = e.cause;
    } else {
      parts.push(String(e));
      e = undefined;
    }
  }
  return parts.join(': ');
}

/** Whether a desktop notification can be shown here, and if not, why. */
function desktopNotifier(): { ok: true } | { ok: false; why: string } {
  if (process.platform !== 'linux')
    return { ok: false, why: `--notify uses notify-send, which ${process.platform} does not have` };
  const which = spawnSync('sh', ['-c', 'command -v notify-send'], { encoding: 'utf8' });
  if (which.status !== 0)
    return { ok: false, why: 'notify-send is not installed (Debian/Ubuntu: apt install libnotify-bin)' };
  if (!process.env.DISPLAY && !process.env.WAYLAND_DISPLAY && !process.env.DBUS_SESSION_BUS_ADDRESS) {
    return {
      ok: false,
      why: 'no desktop session here (no DISPLAY, WAYLAND_DISPLAY or DBUS_SESSION_BUS_ADDRESS)',
    };
  }
  return { ok: true };
}

function heartbeatOption(value: string) {
  if (value === 'adaptive') return 'adaptive' as const;
  const seconds = Number(value);
  if (!Number.isFinite(seconds) || seconds < 1)
    throw new CommandError(
      'BAD_HEARTBEAT',
      `--heartbeat must be a number of seconds ≥ 1 or "adaptive", not ${JSON.stringify(value)}`,
    );
  return { interval: seconds, pongTimeout: Math.min(10, Math.max(2, seconds)) };
}

/** Runs `cmd` in a shell with `input` on stdin; resolves when it exits. */
function runExec(cmd: string, input: string): Promise<void> {
  return new Promise((resolve) => {
    const child = spawn(cmd, { shell: true, stdio: ['pipe', 'inherit', 'inherit'] });
    child.on('error', (err) => {
      log(`--exec failed: ${err.message}`);
      resolve();
    });
    child.on('exit', (code) => {
      if (code !== 0) log(`--exec exited with ${code}`);
      resolve();
    });
    child.stdin.on('error', () => {});
    child.stdin.end(input);
  });
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * The device's Web Push subscription for `vapidKey`: the stored one, or a new one. A stored one
 * made for another key is replaced (the user asked for this key); a failure that may pass
 * (network, 5xx, 429) is retried with backoff up to 30 s.
 */
async function webPushSubscription(
  client: PushwireClient,
  vapidKey: string | undefined,
): Promise<WebPushSubscription> {
  const options = vapidKey === undefined ? {} : { applicationServerKey: vapidKey };
  for (let attempt = 0; ; attempt++) {
    try {
      return await client.pushSubscribe(options);
    } catch (err) {
      if (!(err instanceof WebPushError)) throw err;
      if (err.reason === 'KEY_MISMATCH') {
        log('the stored Web Push subscription is bound to another --vapid-key: replacing it');
        await client.pushUnsubscribe();
        continue;
      }
      if (!err.retryable) throw err;
      const wait = Math.min(30_000, 1000 * 2 ** attempt);
      log(`Web Push subscribe failed (${err.message}); retrying in ${wait / 1000} s`);
      await sleep(wait);
    }
  }
}

/**
 * `pushwire listen`: a device on the command line. Registers on first run (credentials in the state
 * file), resumes from the stored cursors afterwards, prints each message as one JSON line.
 *
 * With `--webpush` (or `--vapid-key`), the first line is the device's Web Push subscription,
 * `{"type":"webpush-subscription","subscription":{endpoint,expirationTime,keys}}`, for a Web Push
 * backend; messages that arrive before it is known wait, so that it is always the first line.
 *
 * Resolves when it has stopped: 0 after SIGINT/SIGTERM, 1 after a fatal error (a token or
 * registration the server refuses, the device connected elsewhere, Web Push subscribe failing).
 */
export async function listenCommand(f: ListenFlags): Promise<ExitStatus> {
  const heartbeat = heartbeatOption(f.heartbeat);
  let notify = false;
  if (f.notify) {
    const n = desktopNotifier();
    if (n.ok) notify = true;
    else log(`--notify: cannot show desktop notifications: ${n.why}; printing messages only`);
  }
  const storage = fileStorage(f.state);
  const saved = await storage.load();
  if (!saved?.credentials && !f.apiKey)
    throw new CommandError('NO_DEVICE', `${f.state} holds no device yet: give --api-key to register one`);

  const servers = f.server
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => checkServerUrl(s, true));
  const client = createClient({
    url: servers.length === 1 ? servers[0]! : servers,
    storage,
    heartbeat,
    ...(f.apiKey && { register: { apiKey: f.apiKey, ...(f.user !== undefined && { user: f.user }) } }),
    ...(f.networkKey !== undefined && { networkKey: f.networkKey }),
  });

  // --exec runs one command at a time, in message order.
  let execChain = Promise.resolve();
  const print = (m: PushMessage) => {
    const line = JSON.stringify(m);
    process.stdout.write(`${line}\n`);
    if (f.exec) {
      const cmd = f.exec;
      execChain = execChain.then(() => runExec(cmd, `${line}\n`));
    }
    if (notify && m.notification) {
      const { title = 'Pushwire', body = '' } = m.notification;
      spawn('notify-send', ['--app-name=Pushwire', String(title), String(body)], { stdio: 'ignore' }).on(
        'error',
        () => {},
      );
    }
  };
  // With --webpush, messages wait until the subscription line is out. They are acknowledged
  // already, so whatever happens next (failure, signal) prints them rather than lose them.
  let held: PushMessage[] | undefined = f.webpush || f.vapidKey !== undefined ? [] : undefined;
  const release = () => {
    const waiting = held ?? [];
    held = undefined;
    for (const m of waiting) print(m);
  };
  client.on('message', (m: PushMessage) => {
    if (held) held.push(m);
    else print(m);
  });
  // The device id, as soon as it is known: from the state file, else once registration gave one.
  let shownDevice: string | undefined;
  const showDevice = () => {
    const id = client.deviceId ?? saved?.credentials?.deviceId;
    if (id === undefined || id === shownDevice) return;
    shownDevice = id;
    log(`device ${id}${saved?.credentials ? '' : ' (registered now)'}, state in ${f.state}`);
  };
  showDevice();
  let stopping = false;
  let finish!: (status: ExitStatus) => void;
  const finished = new Promise<ExitStatus>((resolve) => {
    finish = resolve;
  });
  /** Stops once: closes the client (unless it closed itself), prints what was held, waits for --exec. */
  const stop = (status: ExitStatus, closeClient = true) => {
    if (stopping) return;
    stopping = true;
    release();
    const closed = closeClient
      ? client.close().then(
          () => status,
          () => EXIT.FAILURE,
        )
      : Promise.resolve(status);
    void closed.then((s) => execChain.then(() => finish(s)));
  };
  client.on('state', ({ from, to }) => {
    log(`${from} → ${to}`);
    if (to === 'open') showDevice();
    // Closed without being asked to: a fatal error (logged by the error handler below).
    if (to === 'closed' && !stopping) stop(EXIT.FAILURE, false);
  });
  client.on('error', (err: Error & { code?: string; serverCode?: string; fatal?: boolean }) => {
    log(`${err.code ?? err.name}: ${describe(err)}`);
    if (err.serverCode === 'REPLACED') {
      // Another process connected as this device (the same --state twice): taking turns forever
      // helps nobody, so this one stops.
      log(`this device is connected elsewhere (another listen with --state ${f.state}?): stopping`);
      stop(EXIT.FAILURE);
      return;
    }
    if (!err.fatal) return;
    if (saved?.credentials && (err.code === 'ERR_AUTH' || err.serverCode === 'UNAUTHORIZED')) {
      log(
        `the server refused device ${saved.credentials.deviceId} (wrong token, or its data was reset): delete ${f.state} to register anew`,
      );
    } else if (err.code === 'ERR_AUTH' || err.code === 'ERR_REGISTRATION') {
      log('registration failed: check --api-key and --server');
    } else {
      log(`stopped; if the state file is stale, delete ${f.state} to register anew`);
    }
  });

  for (const topic of f.topic) {
    client.subscribe(topic).then(
      () => log(`subscribed to ${topic}`),
      (err: Error) => log(`subscribe ${topic} failed: ${err.message}`),
    );
  }

  // Token rotation, asked for here: with --rotate-token once the first session is open, and on
  // every SIGHUP. The new token goes to the state file; the client reconnects with it.
  const rotate = () =>
    client.rotateToken().then(
      () => log('token rotated (saved in the state file)'),
      (err: Error) => log(`token rotation failed: ${err.message}`),
    );
  if (f.rotateToken) {
    const off = client.on('state', ({ to }) => {
      if (to !== 'open') return;
      off();
      void rotate();
    });
  }
  process.on('SIGHUP', () => void rotate());

  if (held) {
    webPushSubscription(client, f.vapidKey).then(
      (subscription) => {
        process.stdout.write(`${JSON.stringify({ type: 'webpush-subscription', subscription })}\n`);
        release();
      },
      (err: Error) => {
        if (stopping) return; // closed by a signal meanwhile
        log(`Web Push subscribe failed: ${err.message}`);
        stop(EXIT.FAILURE);
      },
    );
  }

  process.on('SIGINT', () => stop(EXIT.OK));
  process.on('SIGTERM', () => stop(EXIT.OK));
  return finished;
}
