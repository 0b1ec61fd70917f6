#!/usr/bin/env node
// Builds the client SDK for CommonJS (`require('@pushwire/client')`) with esbuild, beside the ESM
// build tsc writes:
//   packages/client/dist/cjs/node.cjs    Node entry (ws transport, fileStorage): `require` under Node
//   packages/client/dist/cjs/index.cjs   neutral entry: `require` elsewhere (bundlers, Electron renderers)
// Each is one file: @pushwire/protocol and the Web Push code (a dynamic import in the ESM build) are
// inlined; `ws` stays a dependency.
import { build } from 'esbuild';

const root = new URL('../', import.meta.url).pathname;
await build({
  entryPoints: {
    node: `${root}packages/client/src/node.ts`,
    index: `${root}packages/client/src/index.ts`,
  },
  outdir: `${root}packages/client/dist/cjs`,
  outExtension: { '.js': '.cjs' },
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  external: ['ws'],
  sourcemap: true,
  legalComments: 'none',
  logLevel: 'warning',
});
