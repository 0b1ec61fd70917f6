import { createRequire } from 'node:module';

// Tests run the server from TypeScript source: the SQLite writer thread loads its source through
// tsx's require hook (a dev-only loader, named here and never resolved by production code).
process.env.PUSHWIRE_TS_WORKER_LOADER ??= createRequire(import.meta.url).resolve('tsx/cjs/api');
