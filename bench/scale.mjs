// Scale run: the same workloads at a small and a large key count (default 1M and 10M), engines
// alternating in fresh child processes as in run.mjs, then a table of ops/s at each size and the
// large ÷ small ratio per engine and workload. JSON goes to bench/results/scale-<time>.json, written
// after each size so a long run that dies half way still leaves the first size's results.
//
// Usage: npm run bench:scale -- [--small N] [--large N] [--engines a,b] [--workloads a,b] [--rounds N]
//                               [--max-ops N] [--value-size B] [--seed S] [--dir D] [--timeout-min M]
//        node bench/scale.mjs --from small.json,large.json   (report from two earlier run.mjs JSON files,
//                                                              or --from scale-*.json to reprint one)
//
// Default workloads: the ones that say something about size. The fills and overwrite write every
// key; readseq reads every key; the random reads and single puts are samples of the key space,
// capped at --max-ops (default 1M) so the 10M run reads 1M random keys, not 2.5M. Left out by default:
// fillrandom-single/-concurrent (they insert count(keys) keys into an empty database, so at 10M
// they mostly measure the same small-database path) and the sync fills (capped at 20k and 2k ops,
// so the database never grows); name them in --workloads to include them.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ENGINES } from './engines.mjs';
import { detailTable, fmtCount, scaleRows, scaleTable, summarize, throughputTable } from './report.mjs';
import { checkNames, defaultTimeoutMinutes, progressLine, runMatrix } from './runner.mjs';
import { KEY_BYTES } from './workloads.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const DEFAULT_WORKLOADS = ['fillseq', 'fillrandom-batch', 'overwrite', 'readrandom-sync', 'readrandom-async', 'readseq'];
const { values: flags } = parseArgs({
  options: {
    'small': { type: 'string', default: '1000000' },
    'large': { type: 'string', default: '10000000' },
    'value-size': { type: 'string', default: '100' },
    'engines': { type: 'string', default: Object.keys(ENGINES).join(',') },
    'workloads': { type: 'string', default: DEFAULT_WORKLOADS.join(',') },
    'rounds': { type: 'string', default: '1' },
    'max-ops': { type: 'string', default: '1000000' },
    'seed': { type: 'string', default: String(Math.floor(Math.random() * 2 ** 31)) },
    'dir': { type: 'string' },
    'timeout-min': { type: 'string' },
    'from': { type: 'string' },
  },
});

const outDir = path.join(here, 'results');
fs.mkdirSync(outDir, { recursive: true });
const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const outFile = path.join(outDir, `scale-${stamp}.json`);

function report(small, large, engines) {
  const a = fmtCount(small.keys), b = fmtCount(large.keys);
  const rounds = small.rounds === large.rounds ? small.rounds : `${small.rounds} and ${large.rounds}`;
  console.log(`\n## Scale: ops/s at ${a} and ${b} keys (median [min–max] of ${rounds} round(s)); ${b} ÷ ${a} = 1.00× means no slowdown\n`);
  console.log(scaleTable(small, large, engines));
}

if (flags.from) {
  // Report only: from two bench-*.json files of run.mjs (small, then large), or one scale-*.json.
  const files = flags.from.split(',');
  const read = (f) => JSON.parse(fs.readFileSync(f, 'utf8'));
  let small, large;
  if (files.length === 1 && read(files[0]).runs?.length === 2) [small, large] = read(files[0]).runs;
  else if (files.length === 2) [small, large] = files.map(read).map((j) => ({ keys: j.meta.keys, rounds: j.meta.rounds, summary: j.summary }));
  else throw new Error('--from takes two bench-*.json files (the small run, then the large one) or one complete scale-*.json');
  const engines = Object.keys(ENGINES).filter((e) => [small, large].some((s) => Object.values(s.summary).some((byEngine) => byEngine[e])));
  report(small, large, engines);
  process.exit(0);
}

const sizes = [Number(flags.small), Number(flags.large)];
const valueSize = Number(flags['value-size']);
const rounds = Number(flags.rounds);
const maxOps = Number(flags['max-ops']);
const seed = Number(flags.seed) >>> 0;
const engines = flags.engines.split(',');
const workloads = flags.workloads.split(',');
checkNames(engines, workloads);
for (const [name, v] of [['small', sizes[0]], ['large', sizes[1]], ['value-size', valueSize], ['rounds', rounds]]) {
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} must be a positive integer`);
}
if (!(sizes[0] < sizes[1])) throw new Error('--small must be less than --large');

// A rough disk check: at the large size every engine keeps a prefilled database per round, plus one
// copy and one workload directory at a time. lmdb (uncompressed B-tree pages filled in random
// order) takes up to ~4× the raw bytes; the LSMs about 1×.
const dir = flags.dir ?? os.tmpdir();
const raw = sizes[1] * (KEY_BYTES + valueSize);
const needBytes = raw * (rounds * engines.reduce((sum, e) => sum + (e === 'lmdb' ? 4 : 1.2), 0) + 2 * 4);
const { bavail, bsize } = fs.statfsSync(dir);
const freeBytes = bavail * bsize;
const versions = Object.fromEntries(engines.map((e) => [e, ENGINES[e].version()]));
console.log(`stemedb scale bench: keys=${sizes.map(fmtCount).join(' then ')} value-size=${valueSize} rounds=${rounds} max-ops=${maxOps} seed=${seed} node=${process.version} cpus=${os.availableParallelism()} dir=${dir}`);
console.log(`engines: ${engines.map((e) => `${e} ${versions[e]}`).join(', ')}; workloads: ${workloads.join(', ')}`);
if (freeBytes < needBytes) {
  console.log(`warning: ${dir} has ${(freeBytes / 1e9).toFixed(1)} GB free; the ${fmtCount(sizes[1])}-key runs may need up to ~${(needBytes / 1e9).toFixed(1)} GB (use --dir)`);
}

const meta = { date: new Date().toISOString(), sizes, valueSize, rounds, maxOps, seed, node: process.version, cpus: os.availableParallelism(), versions, workloads, how: Object.fromEntries(engines.map((e) => [e, ENGINES[e].how])) };
const runs = [];
const failures = [];
const started = performance.now();
const progress = progressLine(started);
for (const keys of sizes) {
  const timeoutMinutes = Number(flags['timeout-min'] ?? defaultTimeoutMinutes(keys));
  const run = await runMatrix({
    keys, valueSize, engines, workloads, rounds, seed, dir: flags.dir, maxOps, timeoutMs: timeoutMinutes * 60_000, progress, label: `${fmtCount(keys)} keys `,
  });
  const summary = summarize(run.results);
  runs.push({ keys, rounds, seconds: run.seconds, summary, results: run.results, failures: run.failures });
  failures.push(...run.failures);
  console.log(`\n## ${fmtCount(keys)} keys: ops/s, median [min–max] of ${rounds} round(s) (${Math.round(run.seconds)} s)\n\n${throughputTable(summary, engines)}`);
  console.log(`\n## ${fmtCount(keys)} keys: latency and resources (medians)\n\n${detailTable(summary, engines)}`);
  const scale = runs.length === 2 ? scaleRows(runs[0], runs[1], engines) : undefined;
  fs.writeFileSync(outFile, JSON.stringify({ meta: { ...meta, seconds: Math.round((performance.now() - started) / 1000) }, scale, runs, failures }, null, 2));
}
progress.end();

report(runs[0], runs[1], engines);
console.log(`\nhow each engine ran:\n${engines.map((e) => `- ${e}: ${ENGINES[e].how}`).join('\n')}`);
if (failures.length) console.log(`\n${failures.length} run(s) failed:\n${failures.join('\n')}`);
console.log(`\n${Math.round((performance.now() - started) / 1000)} s; results in bench/results/${path.basename(outFile)}`);
process.exitCode = failures.length ? 1 : 0;
