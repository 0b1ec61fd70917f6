import { spawn, spawnSync } from 'node:child_process';
import {
  createClient,
  fileStorage,
  type PushMessage,
  type PushwireClient,
  WebPushError,
  type WebPushSubscription,
} from '@pushwire/client/node';
import { checkServerUrl } from '../http.js';

interface ListenFlags {
  server: string;
  apiKey?: string;
  state: string;
  user?: string;
  topic: string[];
  exec?: string;
  notify?: boolean;
  heartbeat: string;
  networkKey?: string;
  webpush?: boolean;
  vapidKey?: string;
  rotateToken?: boolean;
}

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
    throw new Error(
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
 */
export async function listenCommand(f: ListenFlags): Promise<void> {
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
    throw new Error(`${f.state} holds no device yet: give --api-key to register one`);

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
  let exitCode = 0;
  client.on('state', ({ from, to }) => {
    log(`${from} → ${to}`);
    if (to === 'open') showDevice();
    // Closed without being asked to (a fatal error): print what was received, then exit non-zero.
    if (to === 'closed' && !stopping) {
      stopping = true;
      release();
      execChain.then(() => process.exit(exitCode || 1));
    }
  });
  client.on('error', (err: Error & { code?: string; serverCode?: string; fatal?: boolean }) => {
    log(`${err.code ?? err.name}: ${describe(err)}`);
    if (err.serverCode === 'REPLACED') {
      // Another process connected as this device (the same --state twice): taking turns forever
      // helps nobody, so this one stops.
      log(`this device is connected elsewhere (another listen with --state ${f.state}?): stopping`);
      exitCode = 1;
      if (!stopping) {
        stopping = true;
        release();
        client.close().finally(() => execChain.then(() => process.exit(1)));
      }
      return;
    }
    if (!err.fatal) return;
    exitCode = 1;
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
        release();
        client.close().finally(() => execChain.then(() => process.exit(1)));
      },
    );
  }

  const stop = () => {
    stopping = true;
    release();
    client.close().then(
      () => execChain.then(() => process.exit(0)),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
