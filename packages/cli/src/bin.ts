#!/usr/bin/env node
import { main } from './program.js';

// The command's promise is its lifetime: while it runs (a drain waiting on unref'd timers and the
// store's writer thread included), the process stays up for it.
const alive = setInterval(() => {}, 1 << 30);
const status = await main(process.argv);
clearInterval(alive);
// The one place the process ends, with the status the command ended with (see exit.ts); what was
// written is out first (stdout and stderr may be pipes that write later).
process.exitCode = status;
process.stdout.write('', () => process.stderr.write('', () => process.exit(status)));
