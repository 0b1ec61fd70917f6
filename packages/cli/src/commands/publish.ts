import { InvalidArgumentError } from 'commander';
import { CommandError, EXIT } from '../exit.js';
import { api, checkServerUrl } from '../http.js';
import { type FlagsOf, int, type OptionTable } from '../options.js';
import { publishStream } from './publish-stream.js';

/** The options of `pushwire publish`. */
export const PUBLISH_OPTIONS = {
  server: {
    flag: '--server',
    arg: '<url>',
    help: 'server base URL, e.g. http://127.0.0.1:8787',
    required: true,
    env: 'PUSHWIRE_SERVER',
  },
  apiKey: { flag: '--api-key', arg: '<key>', help: 'API key', required: true, env: 'PUSHWIRE_API_KEY' },
  device: { flag: '--device', arg: '<id>', help: 'send to one device' },
  user: { flag: '--user', arg: '<alias>', help: "send to all of a user's devices" },
  topic: { flag: '--topic', arg: '<name>', help: 'send to every subscriber of a topic' },
  title: { flag: '--title', arg: '<text>', help: 'notification title' },
  body: { flag: '--body', arg: '<text>', help: 'notification body' },
  data: { flag: '--data', arg: '<json>', help: 'JSON payload for the app' },
  ttl: { flag: '--ttl', arg: '<seconds>', help: 'time to live; 0 = only if online now', parse: int('--ttl') },
  collapseKey: {
    flag: '--collapse-key',
    arg: '<key>',
    help: 'a newer message with this key replaces an undelivered older one',
  },
  urgency: {
    flag: '--urgency',
    arg: '<urgency>',
    help: 'delivery urgency',
    choices: ['very-low', 'low', 'normal', 'high'],
  },
  id: { flag: '--id', arg: '<id>', help: 'message id (idempotency key)' },
  stream: {
    flag: '--stream',
    help: 'publish each line of stdin (a POST /v1/messages body in JSON) over one WebSocket; prints one ack per line, in order',
  },
} as const satisfies OptionTable;

type PublishFlags = FlagsOf<typeof PUBLISH_OPTIONS>;

/**
 * `pushwire publish`: one POST /v1/messages; prints the accepted message as JSON. A refusal or an
 * unreachable server is thrown as an `ApiError` (exit status 2 or 3).
 */
export async function publishCommand(f: PublishFlags): Promise<void> {
  const server = checkServerUrl(f.server);
  if (f.stream) return streamCommand(server, f);
  const targets = [
    f.device && { device: f.device },
    f.user && { user: f.user },
    f.topic && { topic: f.topic },
  ].filter(Boolean);
  if (targets.length !== 1) throw new InvalidArgumentError('give exactly one of --device, --user, --topic');
  let data: unknown;
  if (f.data !== undefined) {
    try {
      data = JSON.parse(f.data);
    } catch {
      throw new InvalidArgumentError(`--data must be JSON (for a string, quote it: --data '"${f.data}"')`);
    }
  }
  const notification =
    f.title !== undefined || f.body !== undefined
      ? { ...(f.title !== undefined && { title: f.title }), ...(f.body !== undefined && { body: f.body }) }
      : undefined;
  const message = {
    to: targets[0],
    ...(f.id !== undefined && { id: f.id }),
    ...(data !== undefined && { data }),
    ...(notification && { notification }),
    ...(f.ttl !== undefined && { ttl: f.ttl }),
    ...(f.collapseKey !== undefined && { collapseKey: f.collapseKey }),
    ...(f.urgency !== undefined && { urgency: f.urgency }),
  };
  const accepted = await api<{ recipients?: number; duplicate?: boolean }>(
    server,
    f.apiKey,
    'POST',
    'v1/messages',
    message,
  );
  process.stdout.write(`${JSON.stringify(accepted)}\n`);
  if (accepted.recipients === 0) {
    const why = f.user
      ? `user ${JSON.stringify(f.user)} has no devices`
      : `topic ${JSON.stringify(f.topic)} has no subscribers (a device subscribed later does not get it)`;
    process.stderr.write(`pushwire publish: accepted, but no device will receive it: ${why}\n`);
  }
}

/** `publish --stream`: messages come from stdin, so the message flags are refused. */
async function streamCommand(server: string, f: PublishFlags): Promise<void> {
  const given = (
    ['device', 'user', 'topic', 'title', 'body', 'data', 'ttl', 'collapseKey', 'urgency', 'id'] as const
  )
    .filter((k) => f[k] !== undefined)
    .map((k) => PUBLISH_OPTIONS[k].flag);
  if (given.length > 0) {
    throw new InvalidArgumentError(`--stream reads each message from stdin: drop ${given.join(', ')}`);
  }
  const r = await publishStream(server, f.apiKey, process.stdin, process.stdout);
  if (r.refused > 0) {
    throw new CommandError(
      'REFUSED',
      `${r.refused} of ${r.sent} messages were refused (see their acks)`,
      EXIT.REFUSED,
    );
  }
}
