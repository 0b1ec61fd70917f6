/**
 * Commands' options, each written once: a command module declares a table of its options, and both
 * the commander options ({@link addOptions}) and the type of the flags its function receives
 * ({@link FlagsOf}) are made from that table. (`serve` has its own, richer list in serve-settings.ts.)
 */
import { type Command, InvalidArgumentError, Option } from 'commander';

/** One option of a command. */
export interface OptionSpec {
  /** The flag, `--server`; without `arg`, a switch. */
  flag: string;
  /** Placeholder of its value, `<url>`. */
  arg?: string;
  help: string;
  /** Must be given (on the command line, or through `env`). */
  required?: boolean;
  /** Environment variable that gives the value when the flag is not on the command line. */
  env?: string;
  /** Value when given nowhere. */
  default?: unknown;
  /** Makes the value from the text, given the value so far (for a repeatable option); may throw `InvalidArgumentError`. */
  parse?: (value: string, previous: never) => unknown;
  /** Allowed values. */
  choices?: readonly string[];
}

/** A command's options, by the name of the property each sets (commander's camelCase of the flag). */
export type OptionTable = Readonly<Record<string, OptionSpec>>;

/** The value an option gives: what `parse` returns, one of `choices`, the text, or `true` for a switch. */
type ValueOf<S> = S extends { parse: (...args: never[]) => infer T }
  ? T
  : S extends { arg: string }
    ? S extends { choices: readonly (infer C)[] }
      ? C
      : string
    : boolean;

/** Whether an option always has a value (required, or with a default). */
type AlwaysSet<S> = S extends { required: true } ? true : S extends { default: unknown } ? true : false;

type Flatten<T> = { [K in keyof T]: T[K] } & {};

/** The flags a command receives from its option table. */
export type FlagsOf<T extends OptionTable> = Flatten<
  { -readonly [K in keyof T as AlwaysSet<T[K]> extends true ? K : never]: ValueOf<T[K]> } & {
    -readonly [K in keyof T as AlwaysSet<T[K]> extends true ? never : K]?: ValueOf<T[K]>;
  }
>;

/** Adds the options of `table` to `cmd`; throws when a table's name is not its flag's property. */
export function addOptions(cmd: Command, table: OptionTable): Command {
  for (const [name, s] of Object.entries(table)) {
    const option = new Option(s.arg ? `${s.flag} ${s.arg}` : s.flag, s.help);
    if (option.attributeName() !== name) {
      throw new Error(`option table of ${cmd.name()}: ${s.flag} sets ${option.attributeName()}, not ${name}`);
    }
    if (s.required) option.makeOptionMandatory();
    if (s.env) option.env(s.env);
    if (s.choices) option.choices(s.choices);
    if (s.parse) option.argParser(s.parse as (value: string, previous: unknown) => unknown);
    if (s.default !== undefined) option.default(s.default);
    cmd.addOption(option);
  }
  return cmd;
}

/** Parser of an integer ≥ `min`, for `option`. */
export const int =
  (option: string, min = 0) =>
  (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min)
      throw new InvalidArgumentError(`${option} must be an integer ≥ ${min}`);
    return n;
  };

/** Parser of a repeatable option: every value given, in order. */
export const repeatable = (v: string, all: string[]): string[] => [...all, v];
