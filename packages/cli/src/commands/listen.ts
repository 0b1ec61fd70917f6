import { spawn, spawnSync } from 'node:child_process';
import { createClient, fileStorage, type PushMessage } from '@pushwire/client/node';

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
}

const log = (text: string) => process.stderr.write(`pushwire listen: ${text}\n`);

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

/**
 * `pushwire listen`: a device on the command line. Registers on first run (credentials in the state
 * file), resumes from the stored cursors afterwards, prints each message as one JSON line.
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

  const client = createClient({
    url: f.server,
    storage,
    heartbeat,
    ...(f.apiKey && { register: { apiKey: f.apiKey, ...(f.user !== undefined && { user: f.user }) } }),
    ...(f.networkKey !== undefined && { networkKey: f.networkKey }),
  });

  // --exec runs one command at a time, in message order.
  let execChain = Promise.resolve();
  client.on('message', (m: PushMessage) => {
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
  });
  client.on('state', ({ from, to }) => log(`${from} → ${to}`));
  client.on('error', (err: Error & { code?: string }) => log(`${err.code ?? err.name}: ${err.message}`));

  for (const topic of f.topic) {
    client.subscribe(topic).then(
      () => log(`subscribed to ${topic}`),
      (err: Error) => log(`subscribe ${topic} failed: ${err.message}`),
    );
  }

  const stop = () => {
    client.close().then(
      () => execChain.then(() => process.exit(0)),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
