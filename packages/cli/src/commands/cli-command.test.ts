import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cliCommand } from './serve.js';

const BIN = new URL('../../bin/pushwire.js', import.meta.url).pathname;

describe('cliCommand: how the serve banner names the CLI', () => {
  const saved = { argv1: process.argv[1], path: process.env.PATH };
  const roots: string[] = [];
  afterEach(() => {
    process.argv[1] = saved.argv1!;
    process.env.PATH = saved.path;
    for (const d of roots.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  /** `sub` of a fresh temp dir, holding a `pushwire` link to this CLI. */
  const linked = (sub: string) => {
    const root = mkdtempSync(join(tmpdir(), 'pushwire-path-'));
    roots.push(root);
    const dir = join(root, sub);
    mkdirSync(dir, { recursive: true });
    symlinkSync(BIN, join(dir, 'pushwire'));
    return dir;
  };

  it('says `pushwire` when that name on PATH is this CLI', () => {
    process.argv[1] = BIN;
    process.env.PATH = linked('bin');
    expect(cliCommand()).toBe('pushwire');
  });

  it("prints the full path when the only pushwire on PATH is an npm script's node_modules/.bin", () => {
    process.argv[1] = BIN;
    process.env.PATH = linked(join('node_modules', '.bin'));
    const cmd = cliCommand();
    expect(cmd).not.toBe('pushwire');
    expect(cmd).toContain('pushwire.js');
    expect(cmd.startsWith(process.execPath)).toBe(true);
  });
});
