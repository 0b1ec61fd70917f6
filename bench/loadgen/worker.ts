/**
 * A load-generator worker process (started by the coordinator with a raised open-file limit,
 * pinned to the load generator's core). Holds up to ~19,000 client sockets, or runs a publisher.
 * Commands arrive over IPC; stats go back every 250 ms and as soon as a broadcast round completes.
 */
import { ClientEngine } from './clients.js';
import type { CmdEnvelope, WorkerMsg } from './messages.js';
import { Publisher } from './publisher.js';

const send = (m: WorkerMsg) => {
  if (process.connected) process.send!(m);
};

const engine = new ClientEngine(() => send({ type: 'stats', stats: engine.stats() }));
let publisher: Publisher | undefined;

const statsTimer = setInterval(() => send({ type: 'stats', stats: engine.stats() }), 250);

async function handle(cmd: CmdEnvelope): Promise<unknown> {
  switch (cmd.type) {
    case 'open':
      await engine.closeAll();
      engine.open(cmd);
      return null;
    case 'closeAll':
      await engine.closeAll();
      return null;
    case 'reset':
      engine.reset();
      return null;
    case 'tune':
      engine.tune(cmd.concurrency);
      return null;
    case 'epoch':
      engine.epoch();
      return null;
    case 'snapshot':
      return engine.stats();
    case 'latencies':
      return engine.latencies.take();
    case 'seqs':
      return engine.seqs();
    case 'publish': {
      publisher = new Publisher();
      try {
        return await publisher.run(cmd);
      } finally {
        publisher = undefined;
      }
    }
    case 'stopPublish':
      publisher?.stop();
      return null;
    case 'exit':
      setImmediate(() => process.exit(0));
      return null;
  }
}

process.on('message', (cmd: CmdEnvelope) => {
  handle(cmd).then(
    (data) => send({ type: 'reply', reqId: cmd.reqId, data }),
    (err: unknown) =>
      send({ type: 'reply', reqId: cmd.reqId, data: null, error: String((err as Error)?.stack ?? err) }),
  );
});
// The coordinator went away: never linger holding sockets.
process.on('disconnect', () => process.exit(0));
statsTimer.unref();
