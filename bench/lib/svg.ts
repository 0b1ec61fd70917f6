/** A hand-written horizontal bar chart in SVG: groups of labelled bars, one value axis. */

export interface Bar {
  label: string;
  value: number;
  /** Highlight (Pushwire). */
  accent?: boolean;
}

export interface BarChart {
  title: string;
  unit: string;
  groups: { label: string; bars: Bar[] }[];
  /** "lower is better" or "higher is better", shown under the title. */
  better?: 'lower' | 'higher';
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function niceMax(x: number): number {
  if (!(x > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= x) return m * p;
  return 10 * p;
}

const num = (v: number) =>
  Math.abs(v) >= 100 ? Math.round(v).toLocaleString('en-US') : String(Number(v.toPrecision(3)));

export function barChartSvg(c: BarChart): string {
  const longest = Math.max(0, ...c.groups.flatMap((g) => g.bars.map((b) => b.label.length)));
  const labelW = Math.min(380, Math.max(120, Math.round(longest * 6.6) + 14));
  const width = labelW + 530;
  const barH = 18;
  const gap = 4;
  const groupGap = 14;
  const top = 52;
  const plotW = width - labelW - 90;
  const values = c.groups.flatMap((g) => g.bars.map((b) => b.value)).filter((v) => Number.isFinite(v));
  const max = niceMax(Math.max(0, ...values));
  const parts: string[] = [];
  let y = top;
  for (const g of c.groups) {
    if (c.groups.length > 1 || g.label) {
      parts.push(`<text x="8" y="${y + 12}" font-weight="bold">${esc(g.label)}</text>`);
      y += 18;
    }
    for (const b of g.bars) {
      const v = Number.isFinite(b.value) ? Math.max(0, b.value) : 0;
      const w = Math.max(1, (v / max) * plotW);
      parts.push(
        `<text x="${labelW - 6}" y="${y + 13}" text-anchor="end">${esc(b.label)}</text>`,
        `<rect x="${labelW}" y="${y}" width="${w.toFixed(1)}" height="${barH}" fill="${b.accent ? '#d9480f' : '#4c6ef5'}"/>`,
        `<text x="${(labelW + w + 4).toFixed(1)}" y="${y + 13}">${Number.isFinite(b.value) ? num(b.value) : 'n/a'}</text>`,
      );
      y += barH + gap;
    }
    y += groupGap;
  }
  const height = y + 24;
  const ticks: string[] = [];
  for (let k = 0; k <= 4; k++) {
    const x = labelW + (plotW * k) / 4;
    ticks.push(
      `<line x1="${x}" y1="${top - 4}" x2="${x}" y2="${height - 22}" stroke="#ddd"/>`,
      `<text x="${x}" y="${height - 8}" text-anchor="middle" fill="#666">${num((max * k) / 4)}</text>`,
    );
  }
  const sub = `${c.unit}${c.better ? ` — ${c.better} is better` : ''}`;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="8" y="20" font-size="15" font-weight="bold">${esc(c.title)}</text>`,
    `<text x="8" y="38" fill="#555">${esc(sub)}</text>`,
    ...ticks,
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}
