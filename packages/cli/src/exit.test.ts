import { readFileSync } from 'node:fs';
import { CommanderError, InvalidArgumentError } from 'commander';
import { describe, expect, it } from 'vitest';
import { CommandError, EXIT, EXIT_CODES, exitCodesHelp, exitCodesMarkdown, exitStatusOf } from './exit.js';
import { ApiError } from './http.js';
import { main } from './program.js';

/** A Markdown table's rows as trimmed cells (whatever the padding). */
const rows = (md: string) =>
  md
    .split('\n')
    .filter((l) => l.startsWith('|') && !/^\|\s*-/.test(l))
    .map((l) =>
      l
        .split('|')
        .slice(1, -1)
        .map((c) => c.trim()),
    );

describe('exit statuses', () => {
  it('map typed errors: refused 2, unreachable 3, usage and anything else 1', () => {
    expect(exitStatusOf(new ApiError(404, 'UNKNOWN_DEVICE', '404'))).toBe(EXIT.REFUSED);
    expect(exitStatusOf(new ApiError(0, 'UNREACHABLE', 'cannot reach'))).toBe(EXIT.UNREACHABLE);
    expect(exitStatusOf(new InvalidArgumentError('give --scope'))).toBe(EXIT.FAILURE);
    expect(exitStatusOf(new CommanderError(0, 'commander.helpDisplayed', '(outputHelp)'))).toBe(EXIT.OK);
    expect(exitStatusOf(new CommandError('NO_STORE', 'no store'))).toBe(EXIT.FAILURE);
    expect(exitStatusOf(new CommandError('X', 'refused', EXIT.REFUSED))).toBe(EXIT.REFUSED);
    expect(exitStatusOf(new Error('disk full'))).toBe(EXIT.FAILURE);
    expect(exitStatusOf('thrown string')).toBe(EXIT.FAILURE);
  });

  it('are documented in the README and in the --help epilogue', () => {
    const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
    const table = exitCodesMarkdown();
    const start = readme.indexOf('| exit code');
    expect(start).toBeGreaterThan(0);
    const inReadme = readme.slice(start).split('\n\n')[0]!;
    expect(rows(inReadme)).toEqual(rows(table));
    const help = exitCodesHelp();
    for (const [code] of EXIT_CODES) expect(help).toMatch(new RegExp(`^  ${code}  \\S`, 'm'));
    expect(Math.max(...help.split('\n').map((l) => l.length))).toBeLessThanOrEqual(80);
  });

  it('main() returns the status instead of exiting: usage error 1, help 0', async () => {
    const out = process.stdout.write;
    const err = process.stderr.write;
    const written: string[] = [];
    process.stdout.write = process.stderr.write = ((s: string) => written.push(s) > 0) as typeof out;
    try {
      expect(await main(['node', 'pushwire', 'publish', '--ttl', 'soon'])).toBe(EXIT.FAILURE);
      expect(await main(['node', 'pushwire', '--help'])).toBe(EXIT.OK);
      expect(
        await main(['node', 'pushwire', 'backup', '--out', '/nonexistent/x', '--data', '/nonexistent']),
      ).toBe(EXIT.FAILURE);
    } finally {
      process.stdout.write = out;
      process.stderr.write = err;
    }
    const text = written.join('');
    expect(text).toContain('--ttl must be an integer');
    expect(text).toContain('Exit codes:');
    expect(text).toContain('pushwire: /nonexistent holds no Pushwire store');
  });
});
