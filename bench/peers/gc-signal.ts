/**
 * For the "RSS after a full GC" figure: a bench peer started with --expose-gc runs `gc()` a few
 * times on SIGUSR2 and then prints `gc done <rss KiB>` on stdout, which the coordinator waits for.
 */
export function gcOnSignal(): void {
  process.on('SIGUSR2', () => {
    const gc = (globalThis as { gc?: () => void }).gc;
    if (gc) for (let k = 0; k < 4; k++) gc();
    process.stdout.write(`gc done ${Math.round(process.memoryUsage.rss() / 1024)}\n`);
  });
}
