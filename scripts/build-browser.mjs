#!/usr/bin/env node
import { readFileSync } from 'node:fs';
// Builds the client SDK for browsers with esbuild, from its browser entry (packages/client/src/index.ts):
//   packages/client/dist/browser/pushwire.mjs  ES module            <script type="module"> / import
//   packages/client/dist/browser/pushwire.js   single-file IIFE     <script src>, global `Pushwire`
// The server serves both at /sdk/pushwire.mjs and /sdk/pushwire.js. Prints each file's size.
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const root = new URL('../', import.meta.url).pathname;
const outdir = `${root}packages/client/dist/browser`;
const common = {
  entryPoints: [`${root}packages/client/src/index.ts`],
  bundle: true,
  minify: true,
  sourcemap: true,
  platform: 'browser',
  target: ['es2022', 'chrome100', 'firefox100', 'safari15'],
  legalComments: 'none',
  logLevel: 'warning',
};

await Promise.all([
  build({ ...common, format: 'esm', outfile: `${outdir}/pushwire.mjs` }),
  build({ ...common, format: 'iife', globalName: 'Pushwire', outfile: `${outdir}/pushwire.js` }),
]);

for (const file of ['pushwire.mjs', 'pushwire.js']) {
  const bytes = readFileSync(`${outdir}/${file}`);
  const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;
  console.log(`browser SDK: ${file} ${kib(bytes.length)} (gzip ${kib(gzipSync(bytes).length)})`);
}
