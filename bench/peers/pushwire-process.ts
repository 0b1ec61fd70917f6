/** Starts the Pushwire child process (bench/peers/pushwire-server.ts) and waits until it listens. */
import type { ChildProcess } from 'node:child_process';
import type { ServerOptions } from '@pushwire/server';
import { entry, SERVER_CORE, spawnPinned, stopProcess, waitForOutput } from '../lib/proc.js';

export interface PushwireProcess {
  proc: ChildProcess;
  url: string;
  stop(): Promise<void>;
}

export async function startPushwireProcess(
  cfg: { dataDir: string; port: number; apiKey: string; options: Partial<ServerOptions>; redis?: string },
  nodeFlags: string[] = [],
): Promise<PushwireProcess> {
  // --expose-gc: the idle scenario asks for a full GC before its "after GC" RSS sample.
  const proc = spawnPinned(process.execPath, ['--expose-gc', ...nodeFlags, entry('pushwire-server')], {
    core: SERVER_CORE,
    env: { ...process.env, PUSHWIRE_BENCH: JSON.stringify(cfg), NODE_NO_WARNINGS: '1' },
  });
  const out = await waitForOutput(proc, (o) => /listening on http/.test(o), 20_000, 'pushwire server');
  const url = /listening on (http:\/\/\S+)/.exec(out)![1]!;
  proc.stdout?.resume();
  proc.stderr?.resume();
  return { proc, url, stop: () => stopProcess(proc, 'SIGTERM', 8000) };
}
