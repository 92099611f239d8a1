// Peer benchmark: every workload runs the engines alternately, each run in a fresh child process
// (bench/child.mjs) and a fresh directory, for N rounds. Prints markdown tables on stdout and
// writes JSON and an SVG chart into bench/results/.
// Usage: npm run bench -- [--full] [--keys N] [--value-size B] [--engines a,b] [--workloads a,b]
//                         [--rounds N] [--seed S] [--dir D]
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ENGINES } from './engines.mjs';
import { detailTable, summarize, targets, targetsTable, throughputTable } from './report.mjs';
import { chart } from './svg.mjs';
import { WORKLOADS } from './workloads.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const { values: flags } = parseArgs({
  options: {
    'full': { type: 'boolean', default: false },
    'keys': { type: 'string' },
    'value-size': { type: 'string', default: '100' },
    'engines': { type: 'string', default: Object.keys(ENGINES).join(',') },
    'workloads': { type: 'string', default: Object.keys(WORKLOADS).filter((w) => !WORKLOADS[w].hidden).join(',') },
    'rounds': { type: 'string', default: '3' },
    'seed': { type: 'string', default: String(Math.floor(Math.random() * 2 ** 31)) },
    'dir': { type: 'string' },
  },
});
const keys = Number(flags.keys ?? (flags.full ? 1_000_000 : 200_000));
const valueSize = Number(flags['value-size']);
const rounds = Number(flags.rounds);
const seed = Number(flags.seed) >>> 0;
const engines = flags.engines.split(',');
const workloads = flags.workloads.split(',');
for (const e of engines) if (!ENGINES[e]) throw new Error(`unknown engine ${e}; known: ${Object.keys(ENGINES)}`);
for (const w of workloads) if (!WORKLOADS[w] || WORKLOADS[w].hidden) throw new Error(`unknown workload ${w}`);
const root = fs.mkdtempSync(path.join(flags.dir ?? os.tmpdir(), 'stemedb-bench-'));
const versions = Object.fromEntries(engines.map((e) => [e, ENGINES[e].version()]));
console.log(`stemedb bench: keys=${keys} value-size=${valueSize} rounds=${rounds} seed=${seed} node=${process.version} cpus=${os.availableParallelism()} dir=${root}`);
console.log(`engines: ${engines.map((e) => `${e} ${versions[e]}`).join(', ')}`);

const tty = process.stderr.isTTY;
const progress = (text) => { if (tty) process.stderr.write(`\r\x1b[K${text}`); };

function child(spec) {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [path.join(here, 'child.mjs'), JSON.stringify(spec)], { maxBuffer: 1 << 24, timeout: 30 * 60_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${spec.engine} ${spec.workload} failed: ${err.message}\n${stderr.slice(-2000)}`));
      else resolve(JSON.parse(stdout.trim().split('\n').pop()));
    });
  });
}

// One prefilled database per (engine, round), copied for each prefilled workload.
const prefilled = new Map();
async function prefilledCopy(engine, round, dir) {
  const key = `${engine}-${round}`;
  if (!prefilled.has(key)) {
    const base = path.join(root, `prefill-${key}`);
    await child({ engine, workload: 'prefill', dir: base, keys, valueSize, seed });
    prefilled.set(key, base);
  }
  fs.cpSync(prefilled.get(key), dir, { recursive: true });
}

const results = [];
const failures = [];
const total = workloads.length * rounds * engines.length;
const started = performance.now();
let done = 0;
for (const workload of workloads) {
  for (let round = 0; round < rounds; round++) {
    // Rotate which engine goes first, so no engine always runs on the coolest (or hottest) machine.
    const order = engines.map((_, i) => engines[(i + round) % engines.length]);
    for (const engine of order) {
      progress(`[${++done}/${total}] ${workload} ${engine} round ${round + 1} (${Math.round((performance.now() - started) / 1000)} s)`);
      const dir = path.join(root, `${workload}-${engine}-${round}`);
      try {
        if (WORKLOADS[workload].prefilled) await prefilledCopy(engine, round, dir);
        results.push({ round, ...(await child({ engine, workload, dir, keys, valueSize, seed })) });
      } catch (e) {
        failures.push(String(e.message));
        process.stderr.write(`\n${e.message}\n`);
      }
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
}
progress('');
fs.rmSync(root, { recursive: true, force: true });

const summary = summarize(results);
const met = targets(summary);
const seconds = Math.round((performance.now() - started) / 1000);
console.log(`\n## Throughput, ops/s: median [min–max] of ${rounds} rounds\n\n${throughputTable(summary, engines)}`);
console.log(`\n## Latency and resources (medians)\n\n${detailTable(summary, engines)}`);
if (met.length) console.log(`\n## Targets (the issue defines them at 1M keys; this run used ${keys})\n\n${targetsTable(met)}`);
console.log(`\nhow each engine ran:\n${engines.map((e) => `- ${e}: ${ENGINES[e].how}`).join('\n')}`);
if (failures.length) console.log(`\n${failures.length} run(s) failed:\n${failures.join('\n')}`);

const outDir = path.join(here, 'results');
fs.mkdirSync(outDir, { recursive: true });
const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const meta = { date: new Date().toISOString(), keys, valueSize, rounds, seed, seconds, node: process.version, cpus: os.availableParallelism(), versions, how: Object.fromEntries(engines.map((e) => [e, ENGINES[e].how])) };
fs.writeFileSync(path.join(outDir, `bench-${stamp}.json`), JSON.stringify({ meta, summary, targets: met, results, failures }, null, 2));
fs.writeFileSync(path.join(outDir, `bench-${stamp}.svg`), chart(summary, engines, `StemeDB vs peers: ops/s, median of ${rounds} (${keys} keys, seed ${seed})`));
console.log(`\n${seconds} s; results in bench/results/bench-${stamp}.{json,svg}`);
process.exitCode = failures.length ? 1 : 0;
