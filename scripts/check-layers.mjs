#!/usr/bin/env node
// The layer check (docs/architecture.md): imports inside packages/server/src and packages/client/src
// only point down. Import specifiers are read with a regex (no parser dependency); tests are not
// checked. Run by scripts/test.mjs; alone: `node scripts/check-layers.mjs [--no-allow-list] [repo root]`
// (--no-allow-list: check without the ALLOWED exceptions below, as for a fixture tree).
// Exits 1 and prints each wrong-way import as `file: imports target (rule)`.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, posix, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The server's layers, top (4) to bottom (0). A module may import its own layer and the ones below;
 * the key is a folder (`api/`) or a file at the root of src (`server.ts`).
 */
export const SERVER_LAYERS = {
  'server.ts': 4,
  'config.ts': 4,
  'index.ts': 4,
  'api/': 3,
  'gateway/': 3,
  'webpush/': 3,
  'autopush/': 3,
  'wake/': 3,
  'web/': 3,
  'metrics/': 3,
  'core/': 2,
  'store/': 1,
  'bus/': 1,
  'util/': 0,
  'errors.ts': 0,
};

const LAYER_NAMES = ['util/errors', 'store/bus', 'core', 'edge (api, gateway, webpush, …)', 'wiring'];

/** Workspace packages each package may import (the protocol package imports none). */
const PACKAGE_DEPS = {
  protocol: [],
  client: ['@pushwire/protocol'],
  server: ['@pushwire/protocol'],
};

/**
 * Known wrong-way imports that another change is removing, as `from -> to` (paths under
 * packages/server/src). Each is reported as allowed, not as a failure. Empty this list when they
 * are gone: an entry that no longer matches an import fails the check, so it cannot go stale.
 */
export const ALLOWED = [
  // Empty: every known wrong-way import is gone. Add an entry (`from -> to`, with a comment saying
  // when it goes) only for a move that lands in steps.
];

const IMPORT_RE =
  /(?:^|[;\n}])\s*(import|export)\s+(type\s+)?(?:([^'";]*?)\s+from\s+)?['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

/** The import specifiers of a module's source: `{spec, typeOnly}` each. Comments are ignored. */
export function importsOf(source) {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const out = [];
  for (const m of code.matchAll(IMPORT_RE)) {
    if (m[5] !== undefined) {
      out.push({ spec: m[5], typeOnly: false });
      continue;
    }
    if (m[1] === 'export' && m[3] === undefined) continue; // `export 'x'` is not a thing; skip oddities
    const clause = m[3] ?? '';
    const names = /^\{([\s\S]*)\}$/.exec(clause.trim());
    const allTyped = names?.[1]
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)
      .every((s) => s.startsWith('type '));
    out.push({ spec: m[4], typeOnly: m[2] !== undefined || allTyped === true });
  }
  return out;
}

function layerOf(rel) {
  const top = rel.includes('/') ? `${rel.slice(0, rel.indexOf('/'))}/` : rel;
  return SERVER_LAYERS[top];
}

function* sources(dir) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* sources(p);
    else if (/\.(ts|tsx|mts)$/.test(e.name) && !/\.test\.tsx?$/.test(e.name) && !e.name.endsWith('.d.ts'))
      yield p;
  }
}

const toPosix = (p) => p.split(sep).join('/');

/** Resolves a relative specifier of `fromRel` to a path relative to the same src (`.js` → `.ts`). */
function resolveRel(fromRel, spec) {
  return posix.normalize(posix.join(posix.dirname(fromRel), spec)).replace(/\.js$/, '.ts');
}

/**
 * Checks the tree under `root` (a repository: packages/server/src, packages/client/src). Returns
 * `{violations, allowed, stale}`: wrong-way imports as strings, the allow-listed ones met, and
 * allow-list entries that matched nothing.
 */
export function checkLayers(root, allowList = ALLOWED) {
  const violations = [];
  const allowed = [];
  const used = new Set();
  for (const pkg of ['server', 'client']) {
    const src = join(root, 'packages', pkg, 'src');
    let files;
    try {
      files = [...sources(src)];
    } catch {
      continue; // a tree without this package
    }
    for (const file of files) {
      const rel = toPosix(relative(src, file));
      const where = `packages/${pkg}/src/${rel}`;
      for (const { spec, typeOnly } of importsOf(readFileSync(file, 'utf8'))) {
        if (spec.startsWith('@pushwire/')) {
          const name = spec.split('/').slice(0, 2).join('/');
          if (!PACKAGE_DEPS[pkg].includes(name)) {
            violations.push(
              `${where}: imports ${spec} (the ${pkg} package may import only ${PACKAGE_DEPS[pkg].join(', ') || 'no workspace package'})`,
            );
          }
          continue;
        }
        if (!spec.startsWith('.')) continue; // node: built-ins and npm dependencies
        const target = resolveRel(rel, spec);
        if (target.startsWith('..')) {
          violations.push(
            `${where}: imports ${spec} (outside its package's src: import the package instead)`,
          );
          continue;
        }
        if (pkg === 'client') {
          if (target.startsWith('testkit/') && !rel.startsWith('testkit/')) {
            violations.push(`${where}: imports ${target} (the test kit is for tests only)`);
          }
          continue;
        }
        const from = layerOf(rel);
        const to = layerOf(target);
        if (from === undefined) {
          violations.push(
            `${where}: is in no layer (add its folder to SERVER_LAYERS in scripts/check-layers.mjs)`,
          );
          break;
        }
        if (to === undefined || to <= from) continue;
        // The edge modules are handed the resolved options: they may name config.ts's types.
        if (target === 'config.ts' && typeOnly && from === 3) continue;
        const key = `${rel} -> ${target}`;
        if (allowList.includes(key)) {
          allowed.push(key);
          used.add(key);
          continue;
        }
        violations.push(
          `${where}: imports ${target} (${LAYER_NAMES[from]} may not import ${LAYER_NAMES[to]}, a layer above it)`,
        );
      }
    }
  }
  const stale = allowList.filter((k) => !used.has(k));
  return { violations, allowed, stale };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const noAllow = args.includes('--no-allow-list');
  const dir = args.find((a) => !a.startsWith('--'));
  const root = resolve(dir ?? join(dirname(fileURLToPath(import.meta.url)), '..'));
  const { violations, allowed, stale } = checkLayers(root, noAllow ? [] : ALLOWED);
  for (const a of allowed) console.log(`allowed for now (scripts/check-layers.mjs ALLOWED): ${a}`);
  for (const s of stale) console.log(`stale ALLOWED entry (no such import any more, remove it): ${s}`);
  for (const v of violations) console.log(`wrong-way import: ${v}`);
  if (violations.length > 0 || stale.length > 0) {
    console.log(
      `layer check failed: ${violations.length} wrong-way import(s), ${stale.length} stale allow-list entr(ies)`,
    );
    process.exit(1);
  }
  console.log('layers: every import points down');
}
