/**
 * Exit statuses of `pushwire`, in one place: commands return a status or throw a typed error, and
 * only the entry point (bin.ts through {@link main}) ends the process, with the status this module
 * maps it to. `pushwire --help` and the README show {@link EXIT_CODES}.
 */
import { CommanderError } from 'commander';
import { ApiError } from './http.js';

/** The exit statuses scripts can rely on. */
export const EXIT = {
  /** Done: the request succeeded, or a long-running command was stopped by SIGINT/SIGTERM. */
  OK: 0,
  /** A usage error, or a failure: a bad flag or value, a file or data dir problem, a fatal error of `listen`, `distributor` or `serve`. */
  FAILURE: 1,
  /** The server answered the request with an error (`publish`, `keys`): its status and code are printed. */
  REFUSED: 2,
  /** The server could not be reached (`publish`, `keys`). */
  UNREACHABLE: 3,
} as const;

/** An exit status of `pushwire`. */
export type ExitStatus = (typeof EXIT)[keyof typeof EXIT];

/** What each exit status means, for `--help` and the README. */
export const EXIT_CODES: readonly (readonly [ExitStatus, string])[] = [
  [EXIT.OK, 'done; `listen`, `distributor` and `serve` stopped by SIGINT or SIGTERM (after draining)'],
  [
    EXIT.FAILURE,
    'usage error or failure: a bad flag or value, a file or data dir problem; `listen` and `distributor` stopping on a fatal error (a token or registration the server refuses, the device connected elsewhere); `serve` failing to start or drain',
  ],
  [
    EXIT.REFUSED,
    '`publish`, `keys`: the server refused the request (its HTTP status and error code are printed)',
  ],
  [EXIT.UNREACHABLE, '`publish`, `keys`: the server could not be reached'],
];

/** The exit codes as the epilogue of `pushwire --help`, wrapped at `width` columns. */
export function exitCodesHelp(width = 80): string {
  const lines = ['', 'Exit codes:'];
  for (const [code, text] of EXIT_CODES) {
    let line = `  ${code} `; // the text starts at column 5, on every line
    for (const word of text.replace(/`/g, '').split(' ')) {
      if (line.length + 1 + word.length > width && line.length > 5) {
        lines.push(line);
        line = '    ';
      }
      line += ` ${word}`;
    }
    lines.push(line);
  }
  return lines.join('\n');
}

/** The exit codes as a Markdown table (README.md, command line section). */
export function exitCodesMarkdown(): string {
  return [
    '| exit code | meaning |',
    '| --------- | ------- |',
    ...EXIT_CODES.map(([code, text]) => `| ${code} | ${text} |`),
  ].join('\n');
}

/** A command cannot do what it was asked; `code` names why (e.g. `NO_STORE`). */
export class CommandError extends Error {
  override readonly name = 'CommandError';
  constructor(
    readonly code: string,
    message: string,
    readonly exitStatus: ExitStatus = EXIT.FAILURE,
  ) {
    super(message);
  }
}

/** The exit status of an error thrown by a command or by commander. */
export function exitStatusOf(err: unknown): ExitStatus {
  if (err instanceof CommandError) return err.exitStatus;
  if (err instanceof ApiError) return err.status === 0 ? EXIT.UNREACHABLE : EXIT.REFUSED;
  if (err instanceof CommanderError && err.exitCode === EXIT.OK) return EXIT.OK;
  return EXIT.FAILURE;
}
