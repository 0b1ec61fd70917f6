import { type Command, Option } from 'commander';
import { EXIT, type ExitStatus } from '../exit.js';
import type { FlagsOf, OptionTable } from '../options.js';
import { formatConfig, readConfigFile, resolveConfig } from '../serve-config.js';
import { envOf, SETTINGS, type Setting } from '../serve-settings.js';
import { type ServeFlags, serveCommand } from './serve.js';

/** The options of `pushwire serve` besides its settings: where the settings file is, and what to do with it. */
export const SERVE_FILE_OPTIONS = {
  config: {
    flag: '--config',
    arg: '<file>',
    help: 'configuration file (TOML); flags and PUSHWIRE_* variables override it',
    env: 'PUSHWIRE_CONFIG',
  },
  printConfig: {
    flag: '--print-config',
    help: 'print the effective configuration (secrets redacted) and exit',
  },
} as const satisfies OptionTable;

/** Help text of a setting: meaning, default, variable and file key. */
function helpOf(s: Setting): string {
  const def =
    s.defaultText ?? (s.default !== undefined && s.type !== 'boolean' ? String(s.default) : undefined);
  return `${s.help}${def !== undefined ? ` (default: ${def})` : ''} [env ${envOf(s)}, file ${s.key}]`;
}

/** The setting of each commander option. */
const byOption = new Map<Option, Setting>();

/** The options of `pushwire serve`, one per setting (values are checked by {@link resolveConfig}). */
export function serveOptions(): Option[] {
  return SETTINGS.map((s) => {
    const option = new Option(s.arg ? `${s.flag} ${s.arg}` : s.flag, helpOf(s));
    if (s.choices) option.choices(s.choices);
    byOption.set(option, s);
    return option;
  });
}

/** The flags given on the command line, by setting name. */
function givenFlags(cmd: Command): Record<string, string | boolean> {
  const flags: Record<string, string | boolean> = {};
  for (const option of cmd.options) {
    const setting = byOption.get(option);
    const attr = option.attributeName();
    if (setting && cmd.getOptionValueSource(attr) === 'cli') {
      flags[setting.name] = cmd.getOptionValue(attr) as string | boolean;
    }
  }
  return flags;
}

/**
 * The `serve` action: resolves flag > env > file > default, then prints it or runs the node;
 * resolves when done.
 */
export async function runServe(cmd: Command): Promise<ExitStatus> {
  const { config, printConfig } = cmd.opts<FlagsOf<typeof SERVE_FILE_OPTIONS>>();
  const config_ = config && config !== '' ? config : undefined;
  const resolved = resolveConfig({
    flags: givenFlags(cmd),
    env: process.env,
    ...(config_ && { file: { name: config_, values: readConfigFile(config_) } }),
  });
  if (printConfig) {
    process.stdout.write(formatConfig(resolved));
    return EXIT.OK;
  }
  return serveCommand(resolved.values as unknown as ServeFlags);
}
