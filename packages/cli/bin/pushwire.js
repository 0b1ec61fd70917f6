#!/usr/bin/env node
// Committed launcher, so `npx pushwire` is linked by `npm ci` before the TypeScript is built.
import { existsSync } from 'node:fs';

const entry = new URL('../dist/bin.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('pushwire: not built yet — run `npm run build` in the repository root first\n');
  process.exit(1);
}
await import(entry.href);
