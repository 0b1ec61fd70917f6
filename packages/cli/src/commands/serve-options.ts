import { type Command, Option } from 'commander';
import { formatConfig, readConfigFile, resolveConfig } from '../serve-config.js';
import { envOf, SETTINGS, type Setting } from '../serve-settings.js';
import { type ServeFlags, serveCommand } from './serve.js';

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

/** The `serve` action: resolves flag > env > file > default, then prints it or runs the node. */
export async function runServe(cmd: Command): Promise<void> {
  const { config, printConfig } = cmd.opts<{ config?: string; printConfig?: boolean }>();
  const config_ = config && config !== '' ? config : undefined;
  const resolved = resolveConfig({
    flags: givenFlags(cmd),
    env: process.env,
    ...(config_ && { file: { name: config_, values: readConfigFile(config_) } }),
  });
  if (printConfig) {
    process.stdout.write(formatConfig(resolved));
    return;
  }
  await serveCommand(resolved.values as unknown as ServeFlags);
}
