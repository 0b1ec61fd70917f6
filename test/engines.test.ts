import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { getQuickJS, shouldInterruptAfterDeadline } from 'quickjs-emscripten';
import { beforeAll, describe, expect, it } from 'vitest';
import { bundleForHermes } from './engines/bundle.js';

// The React Native SDK entry on the engines it must run on, with no Node or browser API: one
// scenario script (engines/scenario.ts), bundled and lowered as Metro would, run under the Hermes
// VM (hermes-engine-cli) and under QuickJS (quickjs-emscripten). Each prints one JSON line.

const root = fileURLToPath(new URL('../', import.meta.url));
const require = createRequire(import.meta.url);
const tmp = join(root, '.tmp', 'engines');
let script = '';

/** The Hermes binary of hermes-engine-cli for this platform. */
function hermesBinary(): string {
  const pkg = dirname(require.resolve('hermes-engine-cli/package.json'));
  const dir = { linux: 'linux64-bin', darwin: 'osx-bin', win32: 'win64-bin' }[process.platform as string];
  if (dir === undefined) throw new Error(`no hermes-engine-cli binary for ${process.platform}`);
  return join(pkg, dir, process.platform === 'win32' ? 'hermes.exe' : 'hermes');
}

interface Outcome {
  ok: boolean;
  error?: string;
  result: {
    engine: string;
    published: number;
    received: number;
    duplicated: number;
    lost: number;
    inOrder: boolean;
    helloCursors: Record<string, number>[];
    ackedBeforeLoss: Record<string, number>;
    acked: Record<string, number>;
    wake: { state: string; connected: boolean; messages: number; durationMs: number };
    wire: { opened: number; sent: number; received: number };
    state: string;
    virtualMs: number;
  };
}

function parse(lines: string): Outcome {
  const last = lines.trim().split('\n').at(-1) ?? '';
  const outcome = JSON.parse(last) as Outcome;
  if (!outcome.ok) throw new Error(`scenario failed in the engine: ${outcome.error}`);
  return outcome;
}

/** What the scenario must show on every engine. */
function expectScenario({ result: r }: Outcome): void {
  expect(r.published).toBe(9);
  expect(r.received).toBe(9);
  expect(r.duplicated).toBe(0); // one message was sent twice on the wire
  expect(r.lost).toBe(0);
  expect(r.inOrder).toBe(true);
  // First hello has no cursors; after the lost socket it resumes after what was processed (5
  // on the device stream, 1 on the topic); after the wake's reconnect, after 7.
  expect(r.helloCursors).toEqual([{}, { 'd:dev1': 5, 't:news': 1 }, { 'd:dev1': 7, 't:news': 1 }]);
  expect(r.ackedBeforeLoss).toEqual({ 'd:dev1': 5, 't:news': 1 });
  expect(r.acked).toEqual({ 'd:dev1': 8, 't:news': 1 }); // the last one arrived on the dead socket's successor
  expect(r.wake).toMatchObject({ state: 'open', connected: true, messages: 1 });
  expect(r.wake.durationMs).toBeLessThan(10_000);
  expect(r.wire.opened).toBe(3);
  expect(r.wire.received).toBe(14);
  expect(r.state).toBe('closed');
}

beforeAll(async () => {
  script = await bundleForHermes(join(root, 'test/engines/scenario.ts'));
  mkdirSync(tmp, { recursive: true });
  writeFileSync(join(tmp, 'scenario.js'), script);
});

describe('the SDK on a bare engine', () => {
  it('runs under Hermes (hermes-engine-cli 0.12, microtask queue as in React Native)', () => {
    const run = spawnSync(hermesBinary(), ['-Xmicrotask-queue', '-w', join(tmp, 'scenario.js')], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(run.error).toBeUndefined();
    expect(run.status, run.stderr).toBe(0);
    const outcome = parse(run.stdout);
    expect(outcome.result.engine).toBe('hermes');
    expectScenario(outcome);
  });

  it('runs under QuickJS, which has no Node or browser API', async () => {
    const QuickJS = await getQuickJS();
    const vm = QuickJS.newContext();
    const lines: string[] = [];
    try {
      vm.runtime.setInterruptHandler(shouldInterruptAfterDeadline(Date.now() + 60_000));
      const globals = vm.unwrapResult(vm.evalCode('Object.getOwnPropertyNames(globalThis).join(",")'));
      const names = vm.getString(globals).split(',');
      globals.dispose();
      for (const absent of ['setTimeout', 'queueMicrotask', 'WebSocket', 'URL', 'TextEncoder', 'process'])
        expect(names).not.toContain(absent);
      const print = vm.newFunction('print', (text) => {
        lines.push(vm.getString(text));
      });
      vm.setProp(vm.global, 'print', print);
      print.dispose();
      vm.unwrapResult(vm.evalCode(script, 'scenario.js')).dispose();
      // Everything runs on the job (microtask) queue: drain it until the scenario is done.
      for (let i = 0; i < 100 && lines.length === 0; i++) {
        const jobs = vm.runtime.executePendingJobs(-1);
        if (jobs.error) {
          const error = vm.dump(jobs.error);
          jobs.error.dispose();
          throw new Error(`QuickJS job failed: ${JSON.stringify(error)}`);
        }
      }
    } finally {
      vm.dispose();
    }
    const outcome = parse(lines.join('\n'));
    expect(outcome.result.engine).toBe('other');
    expectScenario(outcome);
  });

  it('Metro-style resolution picks the react-native entry of @pushwire/client', async () => {
    const out = await build({
      stdin: { contents: "export * from '@pushwire/client';", resolveDir: root },
      bundle: true,
      write: false,
      metafile: true,
      platform: 'neutral',
      conditions: ['react-native'],
      mainFields: ['react-native', 'module', 'main'],
      external: ['@pushwire/protocol'],
      logLevel: 'silent',
    });
    const inputs = Object.keys(out.metafile.inputs);
    expect(inputs).toContain('packages/client/dist/react-native.js');
    expect(inputs.some((f) => f.includes('transport/ws') || f.includes('storage/file.js'))).toBe(false);
  });
});
