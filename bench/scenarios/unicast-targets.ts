/** The unicast rows of issue #18's targets, computed from this run's own figures. */
import type { ScenarioResult, TargetCheck } from '../lib/report.js';
import type { PeerName } from '../peers/targets.js';

type Rows = ScenarioResult['rows'];

const msgs = (x: number) => `${Math.round(x).toLocaleString('en-US')} msg/s`;

export function unicastTargets(rows: Rows): TargetCheck[] {
  const find = (peer: PeerName, mode: string, level: (l: string) => boolean) =>
    rows.find((r) => r.peerName === peer && r.mode === mode && level(String(r.level)));
  const max = (peer: PeerName, mode: string) =>
    find(peer, mode, (l) => l === 'max')?.deliveredPerS as number | undefined;
  const mq = max('mosquitto', 'mqtt');
  const out: TargetCheck[] = [];
  const vsMosquitto = (figure: string, mode: string, goal: number) => {
    const pw = max('pushwire', mode);
    out.push(
      pw === undefined || mq === undefined
        ? { figure, target: `≥ ${goal}× Mosquitto QoS 0`, measured: 'not measured', met: null }
        : {
            figure,
            target: `≥ ${goal}× Mosquitto QoS 0`,
            measured: `${(pw / mq).toFixed(2)}× (${msgs(pw)} vs ${msgs(mq)})`,
            met: pw >= goal * mq,
          },
    );
  };
  vsMosquitto('durable unicast, batch API', 'batch', 0.5);
  vsMosquitto('durable unicast, one message per request (undici Pool, 16 × 4)', 'single', 0.25);
  const half = find('pushwire', 'single', (l) => l.startsWith('50%'));
  out.push(
    half === undefined
      ? {
          figure: 'one message per request: p99 publish→deliver at half its max',
          target: '≤ 20 ms',
          measured: 'not measured (needs --levels with 0.5)',
          met: null,
        }
      : {
          figure: 'one message per request: p99 publish→deliver at half its max',
          target: '≤ 20 ms',
          measured: `p99 ${Number(half.p99).toFixed(1)} ms (p50 ${Number(half.p50).toFixed(1)}, p99.9 ${Number(half.p999).toFixed(1)}) at ${half.level}`,
          met: Number(half.p99) <= 20,
        },
  );
  // Redis vs SQLite, same publisher (one per request when measured, else the first common one).
  const common = ['single', 'batch', 'pipelined'].find(
    (m) => max('pushwire', m) !== undefined && max('pushwire-redis', m) !== undefined,
  );
  const sq = common ? max('pushwire', common) : undefined;
  const rd = common ? max('pushwire-redis', common) : undefined;
  out.push(
    sq === undefined || rd === undefined
      ? {
          figure: 'one node on Redis vs one node on SQLite, same load',
          target: '≥ 0.9×',
          measured: 'not measured',
          met: null,
        }
      : {
          figure: 'one node on Redis vs one node on SQLite, same load',
          target: '≥ 0.9×',
          measured: `${(rd / sq).toFixed(2)}× (${msgs(rd)} vs ${msgs(sq)}, ${common} publisher)`,
          met: rd >= 0.9 * sq,
        },
  );
  // Round trips to Redis: read events per message (a pipelined batch of commands is one read).
  const redisRows = rows.filter((r) => r.peerName === 'pushwire-redis' && r.redisReadsPerMsg !== null);
  if (redisRows.length > 0)
    out.push({
      figure: 'the Redis path pipelines (no round trip per message)',
      target: '(information: Redis reads / msg ≪ 1 at max)',
      measured: redisRows
        .map(
          (r) =>
            `${r.mode} ${String(r.level).split(' ')[0]}: ${Number(r.redisReadsPerMsg).toFixed(2)} reads, ${Number(r.redisCmdsPerMsg).toFixed(2)} commands / msg`,
        )
        .join('; '),
      met: null,
    });
  const stream = max('pushwire', 'stream');
  if (stream !== undefined && mq !== undefined)
    out.push({
      figure: 'durable unicast, publisher stream (GET /v1/publish, 1 WebSocket × 256 in flight)',
      target: '(information)',
      measured: `${(stream / mq).toFixed(2)}× Mosquitto QoS 0 (${msgs(stream)} vs ${msgs(mq)})`,
      met: null,
    });
  // NATS JetStream, like for like: one long connection, each message answered once stored — the
  // publisher stream; the one-per-request and batch figures are shown beside it.
  const js = max('nats', 'nats');
  const single = max('pushwire', 'single');
  const batch = max('pushwire', 'batch');
  const like = stream ?? single;
  out.push(
    js === undefined || like === undefined
      ? {
          figure: 'NATS JetStream (file storage, publish with ack)',
          target: 'Pushwire ahead',
          measured: 'not measured',
          met: null,
        }
      : {
          figure: 'NATS JetStream (file storage, publish with ack)',
          target: 'Pushwire ahead',
          measured:
            (stream === undefined
              ? ''
              : `publisher stream ${(stream / js).toFixed(2)}× JetStream (${msgs(stream)} vs ${msgs(js)}); `) +
            (single === undefined ? '' : `one per request ${(single / js).toFixed(2)}×`) +
            (batch === undefined ? '' : `; batch API ${(batch / js).toFixed(2)}×`),
          met: like > js,
        },
  );
  const floor = max('fastify', 'single');
  if (floor !== undefined && single !== undefined)
    out.push({
      figure: 'HTTP floor: Pushwire one per request vs bare Fastify + ws (stores nothing), same Pool',
      target: '(information)',
      measured: `${(single / floor).toFixed(2)}× (${msgs(single)} vs ${msgs(floor)})`,
      met: null,
    });
  return out;
}
