// Per-connection heap by kind of object and what holds it, from two heap snapshots of probe.mjs:
//
//   node --max-old-space-size=4000 bench/tools/mem-probe/owners.mjs BEFORE AFTER N [rows]
//
// Each object is counted once, under the first object found holding it (weak edges, prototypes
// and maps skipped); the figures are (after − before) / N, in bytes of the objects themselves.
import { readFileSync } from 'node:fs';

function load(file) {
  const s = JSON.parse(readFileSync(file, 'utf8'));
  const m = s.snapshot.meta;
  const f = m.node_fields;
  const w = f.length;
  const types = m.node_types[0];
  const ef = m.edge_fields;
  const ew = ef.length;
  const etypes = m.edge_types[0];
  const [iT, iN, iS, iE] = ['type', 'name', 'self_size', 'edge_count'].map((x) => f.indexOf(x));
  const [eT, eN, eTo] = ['type', 'name_or_index', 'to_node'].map((x) => ef.indexOf(x));
  const { nodes, edges, strings } = s;
  const kind = (i) => {
    const t = types[nodes[i + iT]];
    let n = strings[nodes[i + iN]];
    if (t.includes('string')) n = '(string)';
    if (t === 'number' || t === 'code') n = `(${t})`;
    return `${t}:${n.slice(0, 40)}`;
  };
  const owner = new Map();
  let e = 0;
  for (let i = 0; i < nodes.length; i += w) {
    const pk = kind(i);
    for (let j = 0; j < nodes[i + iE]; j++, e += ew) {
      const to = edges[e + eTo];
      const et = etypes[edges[e + eT]];
      if (et === 'weak' || et === 'shortcut') continue;
      const named =
        et !== 'element' && et !== 'hidden' && !(et === 'internal' && typeof edges[e + eN] === 'number');
      const en = named ? strings[edges[e + eN]] : `[${et}]`;
      if (en === '__proto__' || en === 'map' || en === 'prototype' || pk.startsWith('synthetic:(')) continue;
      if (!owner.has(to)) owner.set(to, `${pk} .${String(en).slice(0, 30)}`);
    }
  }
  const agg = new Map();
  for (let i = 0; i < nodes.length; i += w) {
    const k = `${kind(i)} <- ${owner.get(i) ?? '?'}`;
    const a = agg.get(k) ?? { n: 0, b: 0 };
    a.n++;
    a.b += nodes[i + iS];
    agg.set(k, a);
  }
  return agg;
}

const [b, a] = [load(process.argv[2]), load(process.argv[3])];
const n = Number(process.argv[4]);
const rows = [];
for (const [k, v] of a) {
  const o = b.get(k) ?? { n: 0, b: 0 };
  rows.push([k, (v.n - o.n) / n, (v.b - o.b) / n]);
}
rows.sort((x, y) => y[2] - x[2]);
console.log('bytes/conn  count/conn  kind <- held by');
console.log('total', rows.reduce((t, r) => t + r[2], 0).toFixed(0));
for (const r of rows.slice(0, Number(process.argv[5] ?? 40))) {
  console.log(r[2].toFixed(1).padStart(8), r[1].toFixed(2).padStart(6), r[0]);
}
