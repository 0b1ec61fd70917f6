/**
 * NATS JetStream publisher: one connection (as NATS clients multiplex), each message a PUB to a
 * device subject with a reply inbox; the stream that captures the subject answers
 * `{"stream":…,"seq":…}` once it has stored the message (a JetStream publish ack). A message
 * counts as accepted only on its ack. Closed loop: connections × window publishes awaiting their
 * ack; open loop: a fixed rate.
 */
import { connect } from 'node:net';
import { NATS_PONG, natsConnect, natsPub, parseNats } from '../lib/nats.js';
import { benchPayload, sleep } from '../lib/util.js';
import { countStatus, newPublishResult, openLoop, type PublishCmd, type PublishResult } from './messages.js';

const MAX_OUTSTANDING = 5000;

export async function natsPublish(cmd: PublishCmd, stopped: () => boolean): Promise<PublishResult> {
  const res = newPublishResult();
  const count = (k: string) => countStatus(res, k);
  const inbox = `_INBOX.bench${process.pid}.`;
  const sock = connect({ host: cmd.host, port: cmd.port });
  sock.setNoDelay(true);
  let closed = false;
  sock.on('error', () => {});
  sock.on('close', () => {
    closed = true;
  });
  let outstanding = 0;
  let nextId = 0;
  let onAck: () => void = () => {};
  let ready: () => void = () => {};
  let rest: Buffer | undefined;
  sock.on('data', (d: Buffer) => {
    sock.cork();
    const parsed = parseNats(rest ? Buffer.concat([rest, d]) : d, {
      msg(_subject, _reply, payload) {
        outstanding--;
        const text = payload.toString('utf8');
        if (text.includes('"seq"') && !text.includes('"error"')) {
          res.accepted++;
          count('ack');
        } else {
          res.failed++;
          count(/"err_code":(\d+)/.exec(text)?.[1] ?? 'error');
        }
        onAck();
      },
      ping: () => sock.write(NATS_PONG),
      pong: () => ready(),
      err: (line) => count(line.slice(0, 60)),
    });
    sock.uncork();
    if (parsed === null) sock.destroy();
    else rest = parsed;
  });
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('nats publisher: no PONG after CONNECT')), 5000);
    ready = () => {
      clearTimeout(t);
      ready = () => {};
      resolve();
    };
    sock.once('connect', () => sock.write(`${natsConnect(`pub${process.pid}`)}SUB ${inbox}* 1\r\nPING\r\n`));
  });
  const publishOne = (): boolean => {
    const subject = cmd.targets[Math.floor(Math.random() * cmd.targets.length)]!;
    res.sent++;
    outstanding++;
    return sock.write(
      natsPub(subject, `${inbox}${++nextId}`, JSON.stringify(benchPayload(0, cmd.payloadBytes))),
    );
  };
  const start = performance.now();
  const end = start + cmd.durationMs;
  const live = () => !stopped() && !closed && performance.now() < end;
  if (cmd.rate === 0) {
    onAck = () => {
      if (live()) publishOne();
    };
    const window = Math.max(1, cmd.connections) * Math.max(1, cmd.window);
    for (let k = 0; k < window; k++) publishOne();
    while (live()) await sleep(20);
  } else {
    await openLoop(cmd.rate, start, live, () => {
      if (outstanding < MAX_OUTSTANDING) return void publishOne();
      count('overload');
      res.sent++;
      res.failed++;
    });
  }
  res.elapsedMs = performance.now() - start;
  onAck = () => {};
  const drainEnd = performance.now() + 15_000;
  while (outstanding > 0 && !closed && performance.now() < drainEnd) await sleep(10);
  res.unanswered = Math.max(0, outstanding);
  sock.destroy();
  return res;
}
