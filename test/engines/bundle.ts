import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import ts from 'typescript';

/**
 * Bundles a script the way React Native's bundler delivers code to Hermes: one classic script
 * (no ES modules at run time), the `react-native` export condition first, and syntax lowered
 * for the engine. Metro does the lowering with Babel (`@react-native/babel-preset`); here two
 * steps do the same job: esbuild bundles and lowers to ES2019 (private fields and methods become
 * WeakMaps, `?.`/`??` become conditionals), then TypeScript's emitter lowers that to ES5
 * (classes become functions, `let`/`const`, arrows, spread, `for…of` and async functions become
 * ES5 with helpers) — the released `hermes-engine-cli` (0.12) rejects `class` and `#private`.
 */
export async function bundleForHermes(entry: string): Promise<string> {
  const out = await build({
    entryPoints: [entry],
    bundle: true,
    write: false,
    format: 'iife',
    platform: 'neutral',
    mainFields: ['react-native', 'module', 'main'],
    conditions: ['react-native'],
    target: 'es2019',
    legalComments: 'none',
    logLevel: 'silent',
    // The sources, so the test needs no prior build.
    alias: {
      '@pushwire/protocol': fileURLToPath(new URL('../../packages/protocol/src/index.ts', import.meta.url)),
    },
  });
  const code = out.outputFiles[0]?.text ?? '';
  return ts.transpileModule(code, {
    compilerOptions: {
      target: ts.ScriptTarget.ES5,
      module: ts.ModuleKind.None,
      downlevelIteration: true,
      lib: ['es2019'],
      removeComments: true,
    },
    reportDiagnostics: false,
  }).outputText;
}
