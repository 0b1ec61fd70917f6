/**
 * Pushwire benchmarks against peers: `npm run bench -- <scenario> [options]`.
 * Run `npm run bench -- --help` for the list; docs/benchmarks.md explains the method.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  buildEntries,
  buildServer,
  killAllChildren,
  LOADGEN_CORE,
  MOSQUITTO,
  pinSelf,
  ROOT,
  TMP,
} from './lib/proc.js';
import {
  load1,
  machine,
  markdownTable,
  type ScenarioResult,
  targetsTable,
  writeResult,
} from './lib/report.js';
import { isoStamp } from './lib/util.js';
import { NATS_SERVER } from './peers/nats.js';
import { ALL_PEERS, type PeerName } from './peers/targets.js';
import { broadcastScenario } from './scenarios/broadcast.js';
import { type Ctx, makeCtx, type Options } from './scenarios/context.js';
import { idleScenario } from './scenarios/idle.js';
import { idleCostScenario } from './scenarios/idle-cost.js';
import { nodeScenario } from './scenarios/node.js';
import { sdkSizeScenario } from './scenarios/sdk-size.js';
import { stormScenario } from './scenarios/storm.js';
import { PUSHWIRE_PUBLISHERS, type PushwirePublisher, unicastScenario } from './scenarios/unicast.js';

const SCENARIOS: Record<string, (ctx: Ctx) => Promise<ScenarioResult>> = {
  idle: idleScenario,
  node: nodeScenario,
  broadcast: broadcastScenario,
  unicast: unicastScenario,
  storm: stormScenario,
  'idle-cost': idleCostScenario,
  'sdk-size': sdkSizeScenario,
};

const HELP = `Usage: npm run bench -- <scenario> [options]

Scenarios: idle | node | broadcast | unicast | storm | idle-cost | sdk-size | all | smoke
  smoke    every scenario, small and short (a few hundred connections): what CI runs

Options (defaults for full runs):
  --n 10000,19000          connection counts for idle and broadcast
  --peers pushwire,ws,socketio,mosquitto,fastify,nats
                           fastify (bare Fastify + ws, stores nothing: the HTTP floor) and nats
                           (NATS JetStream) take part in unicast and broadcast only
  --pushwire-publishers single,pipelined,batch,stream
                           unicast publishers for Pushwire: single = undici Pool, one message per
                           request, 16 connections x 4 in flight, no pipelining; pipelined = 16
                           connections x 64 pipelined requests; batch = POST /v1/messages/batch;
                           stream = the publisher stream (GET /v1/publish), 1 WebSocket x 256 in flight
  --engines sqlite,redis   Pushwire stores in unicast (redis: a private redis-server, AOF always)
  --redis-publishers single,batch   publishers for Pushwire on Redis
  --levels 0.25,0.5,0.9    fractions of each unicast maximum measured open loop (smoke: 0.5, and only
                           for one row of each publisher kind)
  --rounds 5               broadcast rounds (median reported)
  --unicast-n 10000        connected clients in the unicast scenario
  --max-ms 5000            duration of the unicast max-rate probe
  --level-ms 5000          duration of each unicast rate level
  --node-n 100000          clients of the node scenario, spread over --node-processes
  --node-processes 6       Pushwire processes in the node scenario (each under the open-file limit)
  --storm-n 19000          clients in the reconnect storm
  --storm-rate 2000        Pushwire publishes/s while it is killed
  --storm-timeout-ms 60000
  --storm-concurrency 0    reconnect handshakes in flight during the storm (0 = no limit, like real clients)
  --batch 50               messages per request of the batch publisher
  --hb 60                  heartbeat (s) the Pushwire and MQTT clients declare
  --ack-delay 50           Pushwire clients gather acks this long, as the SDK's ackDelay (ms)
  --topic-ack-delay 30000  Pushwire clients ack topic streams on their next ping or device ack, alone
                           after at most this long, as the SDK's topicAckDelay (ms; <= --ack-delay:
                           topic acks go with device acks, as SDKs before 0.2 did)
  --connect-concurrency 256    handshakes in flight, all workers (keep it below the servers' listen backlog, 511)
  --connect-rate 0         new connections/s (0 = unlimited)
  --settle-ms 3000         pause before memory samples
  --payload 100            message payload bytes
  --idle-cost-clients 20   connections per protocol in the idle-cost measurement
  --idle-cost-ms 6000      measuring time per protocol (keep-alive scaled to 1 s)
  --pushwire-opt k=v       Pushwire ServerOptions override, repeatable (e.g. admissionRate=5000)
  --cpu-prof               run the Pushwire server with --cpu-prof (profiles in .tmp/bench/prof)
  --out DIR                results directory (default bench/results; smoke: .tmp/bench/results)
  --no-build               do not run tsc -b packages/protocol packages/server first
`;

function parseArgs(argv: string[]): { scenario: string; o: Options; build: boolean } {
  const scenario = argv[0] ?? '';
  if (!scenario || scenario === '--help' || scenario === '-h' || argv.includes('--help')) {
    process.stdout.write(HELP);
    process.exit(scenario ? 0 : 1);
  }
  const smoke = scenario === 'smoke';
  const o: Options = {
    n: smoke ? [300] : [10_000, 19_000],
    peers: [...ALL_PEERS],
    rounds: smoke ? 3 : 5,
    unicastN: smoke ? 300 : 10_000,
    maxMs: smoke ? 800 : 5000,
    levelMs: smoke ? 600 : 5000,
    stormN: smoke ? 300 : 19_000,
    nodeN: smoke ? 300 : 100_000,
    nodeProcesses: smoke ? 2 : 6,
    stormTimeoutMs: smoke ? 45_000 : 60_000,
    stormRate: smoke ? 300 : 2000,
    stormConcurrency: 0,
    connectConcurrency: 256,
    ackDelayMs: 50,
    topicAckDelayMs: 30_000,
    connectRate: 0,
    payloadBytes: 100,
    batch: 50,
    pushwirePublishers: [...PUSHWIRE_PUBLISHERS],
    redisPublishers: smoke ? ['single'] : ['single', 'batch'],
    engines: ['sqlite', 'redis'],
    levels: smoke ? [0.5] : [0.25, 0.5, 0.9],
    hb: 60,
    settleMs: smoke ? 300 : 3000,
    idleCostClients: smoke ? 10 : 20,
    idleCostMs: smoke ? 2000 : 6000,
    pushwire: {},
    cpuProf: false,
    out: smoke ? join(TMP, 'results') : join(ROOT, 'bench/results'),
    smoke,
  };
  let build = true;
  const num = (v: string | undefined, flag: string): number => {
    const x = Number(v);
    if (v === undefined || !Number.isFinite(x) || x < 0) throw new Error(`${flag} needs a number ≥ 0`);
    return x;
  };
  for (let i = 1; i < argv.length; i++) {
    const flag = argv[i]!;
    const v = argv[i + 1];
    const take = () => {
      i++;
      return v;
    };
    switch (flag) {
      case '--n':
        o.n = String(take())
          .split(',')
          .map((x) => num(x, flag));
        break;
      case '--peers': {
        const list = String(take()).split(',') as PeerName[];
        const known: PeerName[] = [...ALL_PEERS, 'mosquitto-dup'];
        if (list.length === 1 && list[0] === ('' as PeerName)) list.length = 0;
        for (const p of list)
          if (!known.includes(p)) throw new Error(`unknown peer ${p} (known: ${known.join(', ')})`);
        o.peers = list;
        break;
      }
      case '--rounds':
        o.rounds = Math.max(1, num(take(), flag));
        break;
      case '--unicast-n':
        o.unicastN = num(take(), flag);
        break;
      case '--max-ms':
        o.maxMs = num(take(), flag);
        break;
      case '--level-ms':
        o.levelMs = num(take(), flag);
        break;
      case '--node-n':
        o.nodeN = Math.max(1, num(take(), flag));
        break;
      case '--node-processes':
        o.nodeProcesses = Math.max(1, num(take(), flag));
        break;
      case '--storm-n':
        o.stormN = num(take(), flag);
        break;
      case '--storm-rate':
        o.stormRate = num(take(), flag);
        break;
      case '--storm-concurrency':
        o.stormConcurrency = num(take(), flag);
        break;
      case '--storm-timeout-ms':
        o.stormTimeoutMs = num(take(), flag);
        break;
      case '--batch':
        o.batch = Math.max(1, num(take(), flag));
        break;
      case '--pushwire-publishers':
      case '--redis-publishers': {
        const list = String(take()).split(',').filter(Boolean) as PushwirePublisher[];
        for (const p of list)
          if (!PUSHWIRE_PUBLISHERS.includes(p))
            throw new Error(`unknown publisher ${p} (known: ${PUSHWIRE_PUBLISHERS.join(', ')})`);
        if (flag === '--redis-publishers') o.redisPublishers = list;
        else o.pushwirePublishers = list;
        break;
      }
      case '--engines': {
        const list = String(take()).split(',').filter(Boolean) as Options['engines'];
        for (const e of list)
          if (e !== 'sqlite' && e !== 'redis') throw new Error(`unknown engine ${e} (known: sqlite, redis)`);
        o.engines = list;
        break;
      }
      case '--levels':
        o.levels = String(take())
          .split(',')
          .filter(Boolean)
          .map((x) => num(x, flag))
          .filter((x) => x > 0 && x <= 1);
        break;
      case '--hb':
        o.hb = Math.max(1, num(take(), flag));
        break;
      case '--connect-concurrency':
        o.connectConcurrency = Math.max(1, num(take(), flag));
        break;
      case '--ack-delay':
        o.ackDelayMs = num(take(), flag);
        break;
      case '--topic-ack-delay':
        o.topicAckDelayMs = num(take(), flag);
        break;
      case '--connect-rate':
        o.connectRate = num(take(), flag);
        break;
      case '--settle-ms':
        o.settleMs = num(take(), flag);
        break;
      case '--idle-cost-clients':
        o.idleCostClients = Math.max(1, num(take(), flag));
        break;
      case '--idle-cost-ms':
        o.idleCostMs = num(take(), flag);
        break;
      case '--payload':
        o.payloadBytes = num(take(), flag);
        break;
      case '--pushwire-opt': {
        const [k, val] = String(take()).split('=');
        if (!k || val === undefined) throw new Error('--pushwire-opt needs key=value');
        (o.pushwire as Record<string, unknown>)[k] = Number.isFinite(Number(val)) ? Number(val) : val;
        break;
      }
      case '--cpu-prof':
        o.cpuProf = true;
        break;
      case '--out':
        o.out = resolve(String(take()));
        break;
      case '--no-build':
        build = false;
        break;
      default:
        throw new Error(`unknown option ${flag}\n\n${HELP}`);
    }
  }
  if (!smoke && scenario !== 'all' && !SCENARIOS[scenario])
    throw new Error(`unknown scenario ${scenario}\n\n${HELP}`);
  return { scenario, o, build };
}

const log = (s: string) => process.stderr.write(`${s}\n`);

async function main(): Promise<number> {
  const { scenario, o, build } = parseArgs(process.argv.slice(2));
  pinSelf(LOADGEN_CORE);
  const profDir = join(TMP, 'prof');
  if (o.cpuProf) mkdirSync(profDir, { recursive: true });
  const m = machine();
  log(
    `Pushwire bench: ${scenario} on ${m.cores} × ${m.cpu}, ${m.memoryGiB} GiB, Node ${m.node}; ${m.pinning}`,
  );
  const skipped: string[] = [];
  if (!MOSQUITTO && o.peers.some((p) => p.startsWith('mosquitto'))) {
    o.peers = o.peers.filter((p) => !p.startsWith('mosquitto'));
    skipped.push('Mosquitto was skipped: it is not installed (run `bash bench/setup.sh`).');
    log(`warning: ${skipped.at(-1)}`);
  }
  if (!NATS_SERVER && o.peers.includes('nats')) {
    o.peers = o.peers.filter((p) => p !== 'nats');
    skipped.push('NATS JetStream was skipped: nats-server is not installed (run `bash bench/setup.sh`).');
    log(`warning: ${skipped.at(-1)}`);
  }
  if (o.engines.includes('redis') && !existsSync(process.env.REDIS_SERVER ?? '/usr/bin/redis-server')) {
    o.engines = o.engines.filter((e) => e !== 'redis');
    skipped.push('Pushwire on Redis was skipped: redis-server is not installed.');
    log(`warning: ${skipped.at(-1)}`);
  }
  if (build) buildServer(log);
  await buildEntries();
  const ctx = makeCtx(o, log, profDir);
  const names = scenario === 'smoke' || scenario === 'all' ? Object.keys(SCENARIOS) : [scenario];
  const stamp = isoStamp();
  const results: ScenarioResult[] = [];
  for (const name of names) {
    const t0 = performance.now();
    const loadStart = load1();
    let r: ScenarioResult;
    try {
      r = await SCENARIOS[name]!(ctx);
    } catch (err) {
      log(`${name}: harness error: ${(err as Error).stack ?? err}`);
      r = crashed(name, err, performance.now() - t0);
    }
    r.notes.push(...skipped);
    r.load = { start: loadStart, end: load1() };
    // Harness settings that change the figures of every scenario, recorded with them.
    r.options = {
      ...r.options,
      ackDelayMs: o.ackDelayMs,
      topicAckDelayMs: o.topicAckDelayMs,
      cpuProf: o.cpuProf,
      connectConcurrency: o.connectConcurrency,
    };
    results.push(r);
    const files = writeResult(o.out, stamp, r);
    if (r.columns.length > 0) {
      process.stdout.write(
        `\n### ${r.title}\n\n${markdownTable(r.columns, r.rows)}\n\n${targetsTable(r.targets)}\n`,
      );
    }
    if (!r.ok) process.stdout.write(`\nFAILED: ${r.failures.join('; ')}\n`);
    log(`${name}: ${r.ok ? 'ok' : 'FAILED'} in ${Math.round(r.elapsedMs / 1000)} s → ${files.join(', ')}`);
  }
  const ok = results.every((r) => r.ok);
  if (scenario === 'smoke' || scenario === 'all') {
    const file = join(o.out, `${scenario}-${stamp}.json`);
    const summary = {
      scenario,
      ok,
      machine: m,
      startedAt: results[0]?.startedAt,
      scenarios: Object.fromEntries(results.map((r) => [r.scenario, r])),
    };
    writeFileSync(file, `${JSON.stringify(summary, null, 2)}\n`);
    log(`summary → ${file}`);
  }
  // Issue #18's table, "figure | now | target | met?", from the figures of this run.
  const issue = results.flatMap((r) => r.targets.filter((t) => t.figure !== undefined));
  if (issue.length > 0) {
    const md = `## Issue #18 targets, from this run (${stamp})\n\n${targetsTable(issue)}\n`;
    mkdirSync(o.out, { recursive: true });
    const file = join(o.out, `targets-${stamp}.md`);
    writeFileSync(file, md);
    process.stdout.write(`\n${md}`);
    log(`targets → ${file}`);
  }
  process.stdout.write('\nSummary\n');
  for (const r of results) {
    const t = r.targets.map(
      (x) =>
        `${x.met === null ? 'n/a' : x.met ? 'met' : 'NOT met'}: ${x.figure ? `${x.figure} ` : ''}${x.target} (${x.measured})`,
    );
    process.stdout.write(
      `  ${r.ok ? 'ok    ' : 'FAILED'} ${r.scenario} (${Math.round(r.elapsedMs / 1000)} s)${r.ok ? '' : ` — ${r.failures.join('; ')}`}\n`,
    );
    for (const line of t) process.stdout.write(`           ${line}\n`);
  }
  process.stdout.write(
    `${ok ? 'bench ok' : 'bench FAILED'}: ${results.filter((r) => r.ok).length}/${results.length} scenarios ok\n`,
  );
  return ok ? 0 : 1;
}

function crashed(name: string, err: unknown, elapsedMs: number): ScenarioResult {
  return {
    scenario: name,
    title: name,
    ok: false,
    failures: [`harness error: ${String((err as Error)?.message ?? err).slice(0, 500)}`],
    notes: [],
    columns: [],
    rows: [],
    targets: [],
    options: {},
    startedAt: new Date().toISOString(),
    elapsedMs,
  };
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    log(`\n${sig}: stopping`);
    killAllChildren();
    process.exit(130);
  });
}
process.on('exit', () => killAllChildren());

main().then(
  (code) => {
    killAllChildren();
    process.exit(code);
  },
  (err: unknown) => {
    log(String((err as Error)?.message ?? err));
    killAllChildren();
    process.exit(2);
  },
);
