/**
 * Scenario results: a Markdown table, the JSON, and an SVG bar chart per scenario, written to the
 * results directory as `<scenario>-<stamp>.{md,json,svg}`.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { natsVersion } from '../peers/nats.js';
import { CORES, HAS_TASKSET, LOADGEN_CORE, MOSQUITTO, NOFILE, SERVER_CORE } from './proc.js';
import { type BarChart, barChartSvg } from './svg.js';
import { fmt } from './util.js';

export interface Column {
  key: string;
  label: string;
  unit?: string;
}

/** One target of the issue, checked against this run. */
export interface TargetCheck {
  /** What is measured (issue #18's "figure" column); the target text stands alone when absent. */
  figure?: string;
  target: string;
  measured: string;
  /** true / false, or null when the run could not tell (peer or figure missing). */
  met: boolean | null;
}

export interface ScenarioResult {
  scenario: string;
  /** 1-minute load average of the machine at the start and end (the cores are shared). */
  load?: { start: number; end: number };
  title: string;
  /** False when the harness saw a failure (lost messages, clients never ready, …). */
  ok: boolean;
  failures: string[];
  notes: string[];
  columns: Column[];
  rows: Record<string, string | number | boolean | null>[];
  targets: TargetCheck[];
  chart?: BarChart;
  options: Record<string, unknown>;
  startedAt: string;
  elapsedMs: number;
}

export const load1 = (): number => loadavg()[0] ?? 0;

export function machine(): Record<string, string | number> {
  let mosquitto = 'not installed';
  if (MOSQUITTO) {
    // `mosquitto -h` prints its version and exits with status 3.
    const r = spawnSync(MOSQUITTO, ['-h'], { encoding: 'utf8' });
    mosquitto = /mosquitto version (\S+)/.exec(`${r.stdout}${r.stderr}`)?.[1] ?? '?';
  }
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: CORES,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    mosquitto,
    natsServer: natsVersion(),
    openFileLimit: NOFILE,
    pinning: HAS_TASKSET
      ? `servers on core ${SERVER_CORE}, load generator on core ${LOADGEN_CORE}`
      : 'none (no taskset)',
  };
}

const cell = (v: unknown): string => {
  if (v === null || v === undefined) return '–';
  if (typeof v === 'number') return fmt(v);
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  return String(v).replace(/\|/g, '\\|');
};

export function markdownTable(columns: Column[], rows: ScenarioResult['rows']): string {
  const head = `| ${columns.map((c) => (c.unit ? `${c.label} (${c.unit})` : c.label)).join(' | ')} |`;
  const sep = `|${columns.map(() => '---').join('|')}|`;
  const body = rows.map((r) => `| ${columns.map((c) => cell(r[c.key])).join(' | ')} |`);
  return [head, sep, ...body].join('\n');
}

export function targetsTable(targets: TargetCheck[]): string {
  if (targets.length === 0) return '';
  const status = (t: TargetCheck) => (t.met === null ? 'n/a' : t.met ? '**met**' : '**not met**');
  // Targets of earlier issues have no figure: their own three columns.
  if (targets.every((t) => t.figure === undefined)) {
    const rows = targets.map((t) => `| ${cell(t.target)} | ${cell(t.measured)} | ${status(t)} |`);
    return ['| target | measured | status |', '|---|---|---|', ...rows].join('\n');
  }
  const rows = targets.map(
    (t) => `| ${cell(t.figure ?? '–')} | ${cell(t.measured)} | ${cell(t.target)} | ${status(t)} |`,
  );
  return ['| figure | now | target | met? |', '|---|---|---|---|', ...rows].join('\n');
}

export function markdown(r: ScenarioResult): string {
  const m = machine();
  return [
    `## ${r.title}`,
    '',
    `Run ${r.startedAt} (${Math.round(r.elapsedMs / 1000)} s) on ${m.cores} × ${m.cpu}, ${m.memoryGiB} GiB, Node ${m.node}; ${m.pinning}.` +
      (r.load
        ? ` Load average (1 min) ${r.load.start.toFixed(2)} at the start, ${r.load.end.toFixed(2)} at the end.`
        : ''),
    `Status: ${r.ok ? 'ok' : `**FAILED**: ${r.failures.join('; ')}`}`,
    '',
    markdownTable(r.columns, r.rows),
    '',
    targetsTable(r.targets),
    '',
    ...r.notes.map((n) => `- ${n}`),
    '',
  ].join('\n');
}

/** Writes md, json and svg; returns the paths. */
export function writeResult(dir: string, stamp: string, r: ScenarioResult): string[] {
  mkdirSync(dir, { recursive: true });
  const base = join(dir, `${r.scenario}-${stamp}`);
  const files = [`${base}.json`, `${base}.md`];
  writeFileSync(`${base}.json`, `${JSON.stringify({ ...r, machine: machine() }, null, 2)}\n`);
  writeFileSync(`${base}.md`, markdown(r));
  if (r.chart?.groups.some((g) => g.bars.length > 0)) {
    writeFileSync(`${base}.svg`, barChartSvg(r.chart));
    files.push(`${base}.svg`);
  }
  return files;
}
