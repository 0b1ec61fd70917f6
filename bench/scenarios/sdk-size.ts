/**
 * Scenario 6, client SDK size: each SDK's whole public API (`export * from 'pkg'`) bundled by
 * esbuild for the browser (platform browser, ESM, minified, tree-shaken), then gzip -9 and brotli.
 * Pushwire's SDK is bundled from packages/client's build output, as an app would import it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
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
        minBytes: null,
        gzipBytes: null,
        brotliBytes: null,
      });
      notes.push(
        'packages/client is not built yet (no packages/client/dist/index.js): run `npm run build`, then this scenario again.',
      );
      continue;
    }
    try {
      const out = await build({
        stdin: { contents: `export * from ${JSON.stringify(sdk.pkg)};`, resolveDir: ROOT, loader: 'js' },
        bundle: true,
        minify: true,
        treeShaking: true,
        platform: 'browser',
        format: 'esm',
        target: 'es2020',
        write: false,
        logLevel: 'silent',
        define: { 'process.env.NODE_ENV': '"production"' },
      });
      const code = out.outputFiles[0]!.contents;
      rows.push({
        sdk: sdk.label,
        version: version(sdk.pkg),
        status: 'ok',
        minBytes: code.length,
        gzipBytes: gzipSync(code, { level: 9 }).length,
        brotliBytes: brotliCompressSync(code, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }).length,
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
        minBytes: null,
        gzipBytes: null,
        brotliBytes: null,
      });
      if (sdk.pushwire) notes.push(`The Pushwire SDK does not bundle for the browser: ${msg.slice(0, 500)}`);
      else failures.push(`${sdk.pkg}: ${msg.slice(0, 300)}`);
    }
  }
  const pw = rows.find((r) => r.sdk === SDKS[0]!.label);
  const others = rows
    .filter((r) => r !== pw && typeof r.gzipBytes === 'number')
    .map((r) => Number(r.gzipBytes));
  const pwGz = typeof pw?.gzipBytes === 'number' ? pw.gzipBytes : undefined;
  return {
    scenario: 'sdk-size',
    title: 'Client SDK size (browser bundle, minified)',
    ok: failures.length === 0,
    failures,
    notes: [
      "Each SDK's whole public API bundled by esbuild for the browser (ESM, minified, tree-shaken, NODE_ENV=production); sizes in bytes.",
      ...notes,
    ],
    columns: [
      { key: 'sdk', label: 'SDK' },
      { key: 'version', label: 'version' },
      { key: 'minBytes', label: 'minified', unit: 'B' },
      { key: 'gzipBytes', label: 'gzip -9', unit: 'B' },
      { key: 'brotliBytes', label: 'brotli', unit: 'B' },
      { key: 'status', label: 'status' },
    ],
    rows,
    targets: [
      pwGz === undefined || others.length === 0
        ? {
            target: 'client bundle: the smallest of the four SDKs',
            measured: `Pushwire: ${pw?.status ?? 'not measured'}`,
            met: null,
          }
        : {
            target: 'client bundle: the smallest of the four SDKs',
            measured: `${pwGz} B gzipped vs smallest peer ${Math.min(...others)} B`,
            met: pwGz < Math.min(...others),
          },
    ],
    chart: {
      title: 'Client SDK size, minified + gzip -9',
      unit: 'bytes',
      better: 'lower',
      groups: [
        {
          label: '',
          bars: rows
            .filter((r) => typeof r.gzipBytes === 'number')
            .map((r) => ({ label: String(r.sdk), value: Number(r.gzipBytes), accent: r === pw })),
        },
      ],
    },
    options: {},
    startedAt,
    elapsedMs: performance.now() - started,
  };
}
