#!/usr/bin/env node
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { relative } from 'node:path';
// Builds the client SDK for browsers with esbuild, from its browser entry (packages/client/src/index.ts):
//   packages/client/dist/browser/pushwire.mjs               ES module        <script type="module"> / import
//   packages/client/dist/browser/pushwire-webpush-ops.mjs   its Web Push code, loaded by pushwire.mjs
//                                                           with a dynamic import() on first use
//   packages/client/dist/browser/pushwire.js                single-file IIFE <script src>, global `Pushwire`
// The server serves them all at /sdk/ (pushwire.mjs finds its chunk next to itself). Chunk names
// carry no hash: the server's /sdk/ route takes lowercase names only and sends `no-cache`.
// Prints each file's size.
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const root = new URL('../', import.meta.url).pathname;
const outdir = `${root}packages/client/dist/browser`;
const common = {
  entryPoints: { pushwire: `${root}packages/client/src/index.ts` },
  bundle: true,
  minify: true,
  sourcemap: true,
  platform: 'browser',
  target: ['es2022', 'chrome100', 'firefox100', 'safari15'],
  legalComments: 'none',
  logLevel: 'warning',
  metafile: true,
};

const results = await Promise.all([
  build({
    ...common,
    format: 'esm',
    splitting: true,
    outdir,
    outExtension: { '.js': '.mjs' },
    chunkNames: 'pushwire-[name]',
  }),
  // One file: esbuild inlines the dynamic import of an IIFE.
  build({ ...common, format: 'iife', globalName: 'Pushwire', outdir }),
]);

// Files of an earlier build that this one did not write (old chunks) would linger and be served.
const written = new Set(
  results.flatMap((r) => Object.keys(r.metafile.outputs)).map((o) => relative(outdir, o)),
);
for (const file of readdirSync(outdir))
  if (!written.has(file)) rmSync(`${outdir}/${file}`, { recursive: true });

const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;
for (const file of [...written].filter((f) => !f.endsWith('.map')).sort()) {
  const bytes = readFileSync(`${outdir}/${file}`);
  console.log(`browser SDK: ${file} ${kib(bytes.length)} (gzip ${kib(gzipSync(bytes).length)})`);
}
