/**
 * Scenario 6, client SDK size: each SDK's whole public API (`export * from 'pkg'`) bundled by
 * esbuild for the browser (platform browser, ESM, minified, tree-shaken, code splitting on), then
 * gzip -9 and brotli, each output file on its own (as a server sends them).
 * Pushwire's SDK is bundled from packages/client's build output, as an app would import it.
 *
 * With splitting, an SDK that loads part of itself with a dynamic `import()` (Pushwire's Web Push
 * code) comes out as several files, so two figures are reported for every SDK:
 * - entry: the entry file and every chunk it imports statically: what a page loads up front;
 * - all chunks: every file of the bundle, lazily loaded ones included: the whole public API.
 * An SDK without dynamic imports is one file, and both figures are the same.
 */
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';
import { ROOT } from '../lib/proc.js';
import type { ScenarioResult } from '../lib/report.js';
import type { Ctx } from './context.js';

interface Sdk {
  label: string;
  pkg: string;
  pushwire?: boolean;
}

const SDKS: Sdk[] = [
  { label: 'Pushwire (@pushwire/client)', pkg: '@pushwire/client', pushwire: true },
  { label: 'socket.io-client', pkg: 'socket.io-client' },
  { label: 'centrifuge', pkg: 'centrifuge' },
  { label: 'mqtt', pkg: 'mqtt' },
];

interface Sizes {
  minBytes: number;
  gzipBytes: number;
  brotliBytes: number;
}

const sizesOf = (files: Uint8Array[]): Sizes => {
  const sum = (f: (code: Uint8Array) => number) => files.reduce((n, code) => n + f(code), 0);
  return {
    minBytes: sum((code) => code.length),
    gzipBytes: sum((code) => gzipSync(code, { level: 9 }).length),
    brotliBytes: sum(
      (code) => brotliCompressSync(code, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }).length,
    ),
  };
};

const EMPTY_ROW = {
  chunks: null,
  entryMinBytes: null,
  entryGzipBytes: null,
  entryBrotliBytes: null,
  totalMinBytes: null,
  totalGzipBytes: null,
  totalBrotliBytes: null,
};

function version(pkg: string): string {
  try {
    const dir = pkg === '@pushwire/client' ? join(ROOT, 'packages/client') : join(ROOT, 'node_modules', pkg);
    return (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return '?';
  }
}

export async function sdkSizeScenario(ctx: Ctx): Promise<ScenarioResult> {
  const started = performance.now();
  const startedAt = new Date().toISOString();
  const { build } = await import('esbuild');
  const rows: ScenarioResult['rows'] = [];
  const failures: string[] = [];
  const notes: string[] = [];
  for (const sdk of SDKS) {
    ctx.log(`sdk-size: ${sdk.pkg}`);
    if (sdk.pushwire && !existsSync(join(ROOT, 'packages/client/dist/index.js'))) {
      rows.push({
        sdk: sdk.label,
        version: version(sdk.pkg),
        status: 'not built',
        ...EMPTY_ROW,
      });
      notes.push(
        'packages/client is not built yet (no packages/client/dist/index.js): run `npm run build`, then this scenario again.',
      );
      continue;
    }
    try {
      const outdir = join(tmpdir(), 'pushwire-sdk-size');
      const out = await build({
        stdin: { contents: `export * from ${JSON.stringify(sdk.pkg)};`, resolveDir: ROOT, loader: 'js' },
        bundle: true,
        minify: true,
        treeShaking: true,
        splitting: true,
        platform: 'browser',
        format: 'esm',
        target: 'es2020',
        outdir,
        write: false,
        metafile: true,
        logLevel: 'silent',
        define: { 'process.env.NODE_ENV': '"production"' },
      });
      // Output paths: absolute in outputFiles, relative to the working directory in the metafile.
      const files = new Map(out.outputFiles.map((f) => [relative(process.cwd(), f.path), f.contents]));
      const outputs = out.metafile.outputs;
      const entry = Object.keys(outputs).find((o) => outputs[o]?.entryPoint !== undefined);
      if (entry === undefined) throw new Error('esbuild reported no entry output');
      // The entry and what it imports statically, transitively: what loads before the SDK runs.
      const upFront = new Set<string>([entry]);
      for (const o of upFront) {
        for (const i of outputs[o]?.imports ?? []) if (i.kind === 'import-statement') upFront.add(i.path);
      }
      const code = (o: string) => files.get(o) ?? new Uint8Array();
      const js = [...files.keys()].filter((o) => o.endsWith('.js'));
      const entrySizes = sizesOf([...upFront].map(code));
      const totalSizes = sizesOf(js.map(code));
      rows.push({
        sdk: sdk.label,
        version: version(sdk.pkg),
        status: 'ok',
        chunks: js.length,
        entryMinBytes: entrySizes.minBytes,
        entryGzipBytes: entrySizes.gzipBytes,
        entryBrotliBytes: entrySizes.brotliBytes,
        totalMinBytes: totalSizes.minBytes,
        totalGzipBytes: totalSizes.gzipBytes,
        totalBrotliBytes: totalSizes.brotliBytes,
      });
    } catch (err) {
      const msg = String((err as Error).message ?? err)
        .split('\n')
        .slice(0, 3)
        .join(' ');
      rows.push({
        sdk: sdk.label,
        version: version(sdk.pkg),
        status: `bundle failed: ${msg.slice(0, 200)}`,
        ...EMPTY_ROW,
      });
      if (sdk.pushwire) notes.push(`The Pushwire SDK does not bundle for the browser: ${msg.slice(0, 500)}`);
      else failures.push(`${sdk.pkg}: ${msg.slice(0, 300)}`);
    }
  }
  const pw = rows.find((r) => r.sdk === SDKS[0]!.label);
  const peers = rows.filter((r) => r !== pw && typeof r.totalGzipBytes === 'number');
  /** The target, judged on one figure (`entryGzipBytes` or `totalGzipBytes`) of every SDK alike. */
  const target = (key: 'entryGzipBytes' | 'totalGzipBytes', what: string) => {
    const name = `client bundle: the smallest of the four SDKs (${what}, gzip -9)`;
    const mine = pw?.[key];
    if (typeof mine !== 'number' || peers.length === 0) {
      return { target: name, measured: `Pushwire: ${pw?.status ?? 'not measured'}`, met: null };
    }
    const best = peers.reduce((a, b) => (Number(b[key]) < Number(a[key]) ? b : a));
    return {
      target: name,
      measured: `${mine} B vs smallest peer ${best[key]} B (${best.sdk})`,
      met: mine < Number(best[key]),
    };
  };
  return {
    scenario: 'sdk-size',
    title: 'Client SDK size (browser bundle, minified)',
    ok: failures.length === 0,
    failures,
    notes: [
      "Each SDK's whole public API bundled by esbuild for the browser (ESM, es2020, minified, tree-shaken, code splitting, NODE_ENV=production); sizes in bytes, each file compressed on its own.",
      '"entry": the entry file plus the chunks it imports statically (loaded up front). "all chunks": every output file, lazily loaded chunks included (the whole public API). Same figures when an SDK is one file.',
      ...notes,
    ],
    columns: [
      { key: 'sdk', label: 'SDK' },
      { key: 'version', label: 'version' },
      { key: 'chunks', label: 'files' },
      { key: 'entryMinBytes', label: 'entry minified', unit: 'B' },
      { key: 'entryGzipBytes', label: 'entry gzip -9', unit: 'B' },
      { key: 'entryBrotliBytes', label: 'entry brotli', unit: 'B' },
      { key: 'totalMinBytes', label: 'all chunks minified', unit: 'B' },
      { key: 'totalGzipBytes', label: 'all chunks gzip -9', unit: 'B' },
      { key: 'totalBrotliBytes', label: 'all chunks brotli', unit: 'B' },
      { key: 'status', label: 'status' },
    ],
    rows,
    targets: [target('entryGzipBytes', 'entry chunk'), target('totalGzipBytes', 'all chunks')],
    chart: {
      title: 'Client SDK size, minified + gzip -9',
      unit: 'bytes',
      better: 'lower',
      groups: (['entryGzipBytes', 'totalGzipBytes'] as const).map((key) => ({
        label: key === 'entryGzipBytes' ? 'entry (loaded up front)' : 'all chunks (whole API)',
        bars: rows
          .filter((r) => typeof r[key] === 'number')
          .map((r) => ({ label: String(r.sdk), value: Number(r[key]), accent: r === pw })),
      })),
    },
    options: {},
    startedAt,
    elapsedMs: performance.now() - started,
  };
}
