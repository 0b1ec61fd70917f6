import { InvalidArgumentError } from 'commander';
import { ApiError, api, checkServerUrl } from '../http.js';

interface PublishFlags {
  server: string;
  apiKey: string;
  device?: string;
  user?: string;
  topic?: string;
  title?: string;
  body?: string;
  data?: string;
  ttl?: number;
  collapseKey?: string;
  urgency?: string;
  id?: string;
}

/** `pushwire publish`: one POST /v1/messages; prints the accepted message as JSON. */
export async function publishCommand(f: PublishFlags): Promise<void> {
  const server = checkServerUrl(f.server);
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
  try {
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
  } catch (err) {
    if (err instanceof ApiError) {
      process.stderr.write(`pushwire publish: ${err.message}\n`);
      process.exit(err.status === 0 ? 3 : 2);
    }
    throw err;
  }
}
