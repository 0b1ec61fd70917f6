import { Command } from 'commander';
import { afterEach, describe, expect, expectTypeOf, it } from 'vitest';
import type { PUBLISH_OPTIONS } from './commands/publish.js';
import { addOptions, type FlagsOf, int, type OptionTable, repeatable } from './options.js';

const TABLE = {
  server: { flag: '--server', arg: '<url>', help: 'server', required: true, env: 'PUSHWIRE_TEST_SERVER' },
  ttl: { flag: '--ttl', arg: '<seconds>', help: 'ttl', parse: int('--ttl') },
  topic: { flag: '--topic', arg: '<name>', help: 'topics', parse: repeatable, default: [] },
  urgency: { flag: '--urgency', arg: '<u>', help: 'urgency', choices: ['low', 'high'] },
  heartbeat: { flag: '--heartbeat', arg: '<s>', help: 'heartbeat', default: 'adaptive' },
  force: { flag: '--force', help: 'a switch' },
} as const satisfies OptionTable;

/** Parses `args` with the options of `table`; what the action got, or the usage error. */
async function parse<T extends OptionTable>(table: T, args: string[]) {
  const errors: string[] = [];
  const cmd = addOptions(new Command('t'), table)
    .exitOverride()
    .configureOutput({ writeErr: (s) => errors.push(s), writeOut: () => {} });
  let flags: FlagsOf<T> | undefined;
  cmd.action(() => {
    flags = cmd.opts<FlagsOf<T>>();
  });
  try {
    await cmd.parseAsync(args, { from: 'user' });
  } catch {}
  return { flags, error: errors.join('') };
}

afterEach(() => {
  delete process.env.PUSHWIRE_TEST_SERVER;
});

describe('option tables', () => {
  it('give the flags type: required and defaulted options set, the others optional, values parsed', () => {
    type F = FlagsOf<typeof TABLE>;
    expectTypeOf<F>().toEqualTypeOf<{
      server: string;
      topic: string[];
      heartbeat: string;
      ttl?: number;
      urgency?: 'low' | 'high';
      force?: boolean;
    }>();
    expectTypeOf<FlagsOf<typeof PUBLISH_OPTIONS>['urgency']>().toEqualTypeOf<
      'very-low' | 'low' | 'normal' | 'high' | undefined
    >();
  });

  it('make commander options with those values', async () => {
    const { flags } = await parse(TABLE, [
      '--server',
      'http://a',
      '--ttl',
      '5',
      '--topic',
      'x',
      '--topic',
      'y',
      '--urgency',
      'low',
      '--force',
    ]);
    expect(flags).toEqual({
      server: 'http://a',
      ttl: 5,
      topic: ['x', 'y'],
      urgency: 'low',
      heartbeat: 'adaptive',
      force: true,
    });
    const bare = await parse(TABLE, ['--server', 'http://a']);
    expect(bare.flags).toEqual({ server: 'http://a', topic: [], heartbeat: 'adaptive' });
  });

  it('take a required value from its environment variable, the flag winning', async () => {
    process.env.PUSHWIRE_TEST_SERVER = 'http://env';
    expect((await parse(TABLE, [])).flags?.server).toBe('http://env');
    expect((await parse(TABLE, ['--server', 'http://flag'])).flags?.server).toBe('http://flag');
  });

  it('refuse a missing required option, a bad value and a value not among the choices', async () => {
    for (const [args, why] of [
      [[], "required option '--server <url>' not specified"],
      [['--server', 'a', '--ttl', '-1'], '--ttl must be an integer ≥ 0'],
      [['--server', 'a', '--urgency', 'now'], 'Allowed choices are low, high'],
    ] as const) {
      const r = await parse(TABLE, [...args]);
      expect(r.flags).toBeUndefined();
      expect(r.error).toContain(why);
    }
  });

  it('refuse a table whose name is not the property its flag sets', () => {
    expect(() =>
      addOptions(new Command('t'), { collapse: { flag: '--collapse-key', arg: '<k>', help: '' } }),
    ).toThrow(/--collapse-key sets collapseKey, not collapse/);
  });
});
