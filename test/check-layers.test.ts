// The layer check (scripts/check-layers.mjs) on fixture trees: it passes a tree whose imports
// point down, fails one with a wrong-way import, and fails the real tree never.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
// @ts-expect-error: a plain .mjs script without type declarations
import { checkLayers, importsOf } from '../scripts/check-layers.mjs';

const SCRIPT = join(import.meta.dirname, '..', 'scripts', 'check-layers.mjs');
const roots: string[] = [];

/** A repository tree with the given files (paths relative to its root). */
function tree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'pushwire-layers-'));
  roots.push(root);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

const S = 'packages/server/src';
const clean = {
  [`${S}/server.ts`]: "import { Hub } from './core/hub.js';\nimport { routes } from './api/routes.js';\n",
  [`${S}/config.ts`]: "import type { Store } from './store/types.js';\n",
  [`${S}/api/routes.ts`]:
    "import type { ResolvedOptions } from '../config.js';\nimport { Hub } from '../core/hub.js';\nimport { HttpError } from '../errors.js';\n",
  [`${S}/core/hub.ts`]:
    "import { deviceStream } from '@pushwire/protocol';\nimport type { Store } from '../store/types.js';\n",
  [`${S}/store/types.ts`]: "import { newId } from '../util/ids.js';\n",
  [`${S}/util/ids.ts`]: "import { randomBytes } from 'node:crypto';\n",
  [`${S}/errors.ts`]: 'export class HttpError extends Error {}\n',
  'packages/client/src/client.ts': "import { encodeFrame } from '@pushwire/protocol';\n",
};

afterEach(() => {
  for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true });
});

describe('layer check', () => {
  it('passes a tree whose imports point down', () => {
    const r = checkLayers(tree(clean), []);
    expect(r.violations).toEqual([]);
    expect(spawnSync(process.execPath, [SCRIPT, '--no-allow-list', tree(clean)]).status).toBe(0);
  });

  it('fails a wrong-way import (core → gateway), naming the file and the target', () => {
    const root = tree({
      ...clean,
      [`${S}/core/hub.ts`]: "import type { Session } from '../gateway/session.js';\n",
      [`${S}/gateway/session.ts`]: 'export class Session {}\n',
    });
    const r = checkLayers(root, []);
    expect(r.violations).toHaveLength(1);
    expect(r.violations[0]).toContain(`${S}/core/hub.ts: imports gateway/session.ts`);
    const run = spawnSync(process.execPath, [SCRIPT, '--no-allow-list', root], { encoding: 'utf8' });
    expect(run.status).toBe(1);
    expect(run.stdout).toContain('wrong-way import');
  });

  it('fails util/ importing above it, a multi-line import and a dynamic one', () => {
    const root = tree({
      ...clean,
      [`${S}/util/ids.ts`]:
        "import {\n  type Store,\n  open,\n} from '../store/types.js';\nconst m = await import('../core/hub.js');\n",
    });
    const r = checkLayers(root, []);
    expect(r.violations.map((v: string) => v.split(' (')[0])).toEqual([
      `${S}/util/ids.ts: imports store/types.ts`,
      `${S}/util/ids.ts: imports core/hub.ts`,
    ]);
  });

  it('fails a value import of config.ts below the wiring, and the server importing the client', () => {
    const root = tree({
      ...clean,
      [`${S}/api/routes.ts`]: "import { resolveOptions } from '../config.js';\n",
      [`${S}/core/hub.ts`]: "import { createPushwireClient } from '@pushwire/client';\n",
    });
    expect(checkLayers(root, []).violations).toHaveLength(2);
  });

  it('ignores comments and tests; the client may not import its test kit outside it', () => {
    const root = tree({
      ...clean,
      [`${S}/core/hub.ts`]: "// import { x } from '../api/routes.js';\n/* import '../gateway/a.js' */\n",
      [`${S}/core/hub.test.ts`]: "import { routes } from '../api/routes.js';\n",
      'packages/client/src/client.ts': "import { FakeServer } from './testkit/fake-server.js';\n",
    });
    expect(checkLayers(root, []).violations).toEqual([
      'packages/client/src/client.ts: imports testkit/fake-server.ts (the test kit is for tests only)',
    ]);
  });

  it('lets an allow-listed import pass and fails an allow-list entry that matches nothing', () => {
    const root = tree({ ...clean, [`${S}/store/types.ts`]: "import { x } from '../core/streams.js';\n" });
    const r = checkLayers(root, ['store/types.ts -> core/streams.ts', 'bus/gone.ts -> core/hub.ts']);
    expect(r.violations).toEqual([]);
    expect(r.allowed).toEqual(['store/types.ts -> core/streams.ts']);
    expect(r.stale).toEqual(['bus/gone.ts -> core/hub.ts']);
  });

  it('reads type-only imports', () => {
    expect(
      importsOf(
        "import type { A } from './a.js';\nimport { type B, type C } from './b.js';\nimport { D, type E } from './d.js';\nexport { F } from './f.js';",
      ),
    ).toEqual([
      { spec: './a.js', typeOnly: true },
      { spec: './b.js', typeOnly: true },
      { spec: './d.js', typeOnly: false },
      { spec: './f.js', typeOnly: false },
    ]);
  });

  it('passes the repository itself', () => {
    const run = spawnSync(process.execPath, [SCRIPT], { encoding: 'utf8' });
    expect(run.stdout).toContain('every import points down');
    expect(run.status).toBe(0);
  });
});
