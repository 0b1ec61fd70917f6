#!/usr/bin/env node
// The whole test command: system packages the tests need (scripts/ci-setup.sh: installs them with
// apt-get as root, else names what is missing), build, typecheck the tests, lint and format
// check, the layer check (scripts/check-layers.mjs: imports only point down), then every test.
// Prints a closing "N passed, N failed" line so any CI reads the outcome.
import { spawnSync } from 'node:child_process';

const steps = [
  ['system packages', 'bash', ['scripts/ci-setup.sh']],
  ['build', 'npm', ['run', 'build', '--silent']],
  ['typecheck', 'npm', ['run', 'typecheck', '--silent']],
  ['lint', 'npx', ['biome', 'check', '.']],
  ['layers', 'node', ['scripts/check-layers.mjs']],
];
for (const [name, cmd, args] of steps) {
  console.log(`\n▶ ${name}`);
  const r = spawnSync(cmd, args, { stdio: 'inherit' });
  if (r.status !== 0) {
    console.log(`\n${name} failed`);
    console.log('0 passed, 1 failed');
    process.exit(1);
  }
}
console.log('\n▶ tests');
const r = spawnSync(
  'npx',
  [
    'vitest',
    'run',
    '--reporter=default',
    '--reporter=json',
    '--outputFile.json=.tmp/vitest.json',
    ...process.argv.slice(2),
  ],
  { stdio: 'inherit' },
);
let passed = 0;
let failed = r.status === 0 ? 0 : 1;
try {
  const { readFileSync } = await import('node:fs');
  const j = JSON.parse(readFileSync('.tmp/vitest.json', 'utf8'));
  passed = j.numPassedTests;
  failed = j.numFailedTests + (r.status !== 0 && j.numFailedTests === 0 ? 1 : 0);
} catch {}
console.log(`\n${passed} passed, ${failed} failed`);
process.exit(r.status ?? 1);
