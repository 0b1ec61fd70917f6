import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { StoreError, toStoreError } from './errors.js';
import type { WriteBatch, WriteReply, WriterData, WriterReady } from './sqlite-writer.js';

/**
 * Environment variable naming a CommonJS require hook (an absolute path, e.g. tsx's `cjs/api`) that
 * the writer thread registers before loading its TypeScript source. Only set by the test setup
 * (`test/helpers/ts-worker.ts`): built code starts the compiled writer and never reads it.
 */
export const TS_WORKER_LOADER_ENV = 'PUSHWIRE_TS_WORKER_LOADER';

/** What the thread reports to its owner. */
export interface WriterThreadEvents {
  /** The writer committed (or failed) the batch it was sent. */
  reply(reply: WriteReply): void;
  /** The thread failed or exited; `closing`: it was asked to close. */
  died(error: StoreError, closing: boolean): void;
}

/**
 * The SQLite writer thread's lifecycle: starts the `worker_threads` worker on the database file,
 * sends it one batch at a time (keeping the process alive only while a batch is in flight), and
 * stops it. Owns its Worker; the store sees batches and replies only.
 * @internal
 */
export class SqliteWriterThread {
  private readonly worker: Worker;
  /** Resolves once the writer has the database open, or has died trying. */
  readonly started: Promise<void>;
  private closing = false;

  constructor(path: string, events: WriterThreadEvents) {
    const entry = writerEntry();
    const data: WriterData = { path };
    this.worker = new Worker(entry.code, { eval: entry.eval, workerData: { pushwireWriter: data } });
    this.worker.unref();
    let started: () => void = () => {};
    this.started = new Promise<void>((resolve) => {
      started = resolve;
    });
    this.worker.on('message', (msg: WriteReply | WriterReady) => {
      if ('ready' in msg) started();
      else {
        this.worker.unref();
        events.reply(msg);
      }
    });
    this.worker.on('error', (err) => {
      events.died(toStoreError(err, 'store writer failed'), false);
      started();
    });
    this.worker.on('exit', (code) => {
      events.died(new StoreError('STORE_IO', `store writer exited (${code})`), this.closing);
      started();
    });
  }

  /** Sends a batch; the process stays alive until its reply. */
  send(batch: WriteBatch): void {
    this.worker.ref();
    this.worker.postMessage(batch);
  }

  /** Asks the writer to close its connection and waits for the thread to exit. */
  async close(): Promise<void> {
    this.closing = true;
    const exited = new Promise((resolve) => this.worker.once('exit', resolve));
    this.worker.postMessage({ k: 'close' });
    await exited;
  }
}

/**
 * How to start the writer: its compiled module next to this one. Running from TypeScript source
 * (tests), the source goes through the require hook named by {@link TS_WORKER_LOADER_ENV}
 * (Node 20 applies no `--import` loader to a worker's modules); without one, a clear error.
 */
function writerEntry(): { code: string; eval: boolean } {
  const js = fileURLToPath(new URL('./sqlite-writer.js', import.meta.url));
  if (import.meta.url.endsWith('.js') || existsSync(js)) return { code: js, eval: false };
  const loader = process.env[TS_WORKER_LOADER_ENV];
  if (!loader) {
    throw new StoreError(
      'STORE_INVALID',
      `the SQLite writer runs from built code (npm run build); from source set ${TS_WORKER_LOADER_ENV}`,
    );
  }
  const ts = fileURLToPath(new URL('./sqlite-writer.ts', import.meta.url));
  return {
    code: `require(${JSON.stringify(loader)}).register(); require(${JSON.stringify(ts)});`,
    eval: true,
  };
}
