// Crash test driver: repeatedly runs a writer child (test/fixtures/crash-writer.mjs) on one
// database directory, kills it with SIGKILL at a random moment, reopens the database here and
// checks what survived against a model of every op the child issued and had acknowledged.
//
//   node scripts/crash-test.mjs [--cycles 20] [--seed N] [--dir D] [--shared-keys 300]
//                               [--write-buffer 65536] [--keep] [--stop-on-violation]
//   npm run test:crash -- --cycles 200
//
// Needs dist/ (npm run build). Prints its seed first; the seed fixes the workload of every cycle
// and the kill plan, though the exact kill instant still depends on timing.
// Exit status is non-zero when any check fails. The last line is "RESULT <json>".
//
// Checks after each kill (the model: for each key, the writes to it in issue order, starting
// from the value the previous cycle recovered; a delete writes "absent"):
//   lost     the recovered value of a key is older than its last acknowledged write, i.e. it is
//            not the last acknowledged write or a write issued after it (acknowledged or not)
//   phantom  a key holds a value no issued op ever wrote to it
//   torn     some but not all of a batch's private keys (b<id>:<i>) are present. A batch whose
//            private keys are all present counts as applied, so its entries on shared keys
//            must be visible too (that is checked as "lost").
//   read     getSync/get disagree with the iterator
//   writer   the writer failed on its own (open, a write or a flush rejected, or it exited),
//            or its open() hung for 20 s
//   verify   reopening the database after the kill failed or hung
// After checking, the driver deletes the batch-private keys it saw (an acknowledged sync batch)
// and the recovered state becomes the next cycle's baseline.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { rng } from '../test/helpers/random.mjs';
import { valueFor } from '../test/fixtures/crash-values.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const writerPath = path.join(root, 'test/fixtures/crash-writer.mjs');

function parseArgs(argv) {
  const out = { cycles: 20, seed: undefined, dir: undefined, sharedKeys: 300, writeBuffer: 64 * 1024, keep: false, stop: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--cycles') out.cycles = Number(next());
    else if (a === '--seed') out.seed = Number(next());
    else if (a === '--dir') out.dir = next();
    else if (a === '--shared-keys') out.sharedKeys = Number(next());
    else if (a === '--write-buffer') out.writeBuffer = Number(next());
    else if (a === '--keep') out.keep = true;
    else if (a === '--stop-on-violation') out.stop = true;
    else throw new Error(`unknown argument ${a}`);
  }
  if (!Number.isInteger(out.cycles) || out.cycles < 1) throw new Error('--cycles must be a positive integer');
  return out;
}

const args = parseArgs(process.argv.slice(2));
const envSeed = process.env.STEMEDB_CRASH_SEED;
const seed = args.seed ?? (envSeed ? Number(envSeed) : Math.floor(Math.random() * 2 ** 31));
if (!Number.isInteger(seed)) throw new Error(`bad seed ${seed}`);
const ownDir = args.dir === undefined;
const workRoot = ownDir ? fs.mkdtempSync(path.join(os.tmpdir(), 'stemedb-crash-')) : undefined;
const dir = ownDir ? path.join(workRoot, 'db') : path.resolve(args.dir);
if (!ownDir && fs.existsSync(dir) && fs.readdirSync(dir).length > 0) {
  throw new Error(`${dir} is not empty; the model starts from an empty database`);
}
console.log(`crash-test: seed=${seed} cycles=${args.cycles} dir=${dir} writeBufferSize=${args.writeBuffer} sharedKeys=${args.sharedKeys}`);

const { StemeDB } = await import(pathToFileURL(path.join(root, 'dist/index.js')).href);

const random = rng(seed);
const int = (lo, hi) => lo + Math.floor(random() * (hi - lo + 1));


function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms); }),
  ]);
}
const short = (v) => (v === undefined ? '<absent>' : v.length > 40 ? `${v.slice(0, 40)}…(${v.length} B)` : v);

// ---- one writer run ----

let lastOpenMs = 60; // adapts to the measured O→R time, so "open" kills land inside open()

/** Decides when to kill this cycle's writer. */
function killPlan() {
  const r = random();
  if (r < 0.15) return { mode: 'open', delay: int(0, Math.ceil(lastOpenMs * 1.2)) };
  if (r < 0.3) return { mode: 'flush', nth: int(1, 3), delay: int(0, 8) };
  if (r < 0.45) return { mode: 'early', delay: int(0, 30) };
  return { mode: 'run', delay: int(30, 900) };
}

function runWriter(childSeed, firstOpId, plan) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [writerPath, dir, String(childSeed), String(firstOpId), String(args.sharedKeys), String(args.writeBuffer)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines = [];
    let partial = '';
    let stderr = '';
    let killedAt;
    let openedAt;
    let readyAt;
    let flushes = 0;
    const timers = [];
    const kill = (why) => {
      if (killedAt !== undefined) return;
      killedAt = performance.now();
      plan.actual = why;
      child.kill('SIGKILL');
    };
    const later = (ms, why) => timers.push(setTimeout(() => kill(why), ms));
    // Safety nets: a writer that never opens, or never flushes, is killed anyway.
    later(20_000, 'timeout');
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      const parts = (partial + chunk).split('\n');
      partial = parts.pop();
      for (const line of parts) {
        lines.push(line);
        const tag = line[0];
        if (tag === 'O' && openedAt === undefined) {
          openedAt = performance.now();
          if (plan.mode === 'open') later(plan.delay, `open+${plan.delay}ms`);
        } else if (tag === 'R' && readyAt === undefined) {
          readyAt = performance.now();
          if (plan.mode === 'early' || plan.mode === 'run') later(plan.delay, `ready+${plan.delay}ms`);
          if (plan.mode === 'flush') later(5000, 'no-flush-timeout');
        } else if (tag === 'F') {
          flushes++;
          if (plan.mode === 'flush' && flushes === plan.nth) {
            if (plan.delay === 0) kill(`flush#${flushes}+0ms`);
            else later(plan.delay, `flush#${flushes}+${plan.delay}ms`);
          }
        }
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (c) => { stderr += c; });
    child.on('close', (code, signal) => {
      for (const t of timers) clearTimeout(t);
      const openMs = openedAt !== undefined && readyAt !== undefined ? readyAt - openedAt : undefined;
      resolve({ lines, code, signal, stderr, openMs, killedAfterReadyMs: readyAt !== undefined && killedAt !== undefined ? killedAt - readyAt : undefined });
    });
  });
}

// ---- model ----

function buildModel(lines) {
  const ops = new Map();
  const perKey = new Map();
  const writerErrors = [];
  let maxId = 0;
  let opened = false;
  let ready = false;
  let flushCalls = 0;
  let flushDone = 0;
  for (const line of lines) {
    const f = line.split(' ');
    switch (f[0]) {
      case 'I': {
        const id = Number(f[1]);
        const op = { id, sync: f[2] === 's', kind: f[3], entries: [], acked: false };
        for (let i = 4; i < f.length; i += 2) {
          const key = f[i];
          const len = Number(f[i + 1]);
          const value = len < 0 ? undefined : valueFor(id, key, len);
          op.entries.push({ key, value });
          if (!perKey.has(key)) perKey.set(key, []);
          perKey.get(key).push({ op, value });
        }
        ops.set(id, op);
        maxId = Math.max(maxId, id);
        break;
      }
      case 'A': {
        const op = ops.get(Number(f[1]));
        if (!op) writerErrors.push(`ack for an op never issued: ${line}`);
        else op.acked = true;
        break;
      }
      case 'O': opened = true; break;
      case 'R': ready = true; break;
      case 'F': flushCalls++; break;
      case 'G': flushDone++; break;
      case 'E': writerErrors.push(line.slice(2)); break;
      default: writerErrors.push(`unexpected line from writer: ${line.slice(0, 200)}`);
    }
  }
  return { ops, perKey, writerErrors, maxId, opened, ready, flushCalls, flushDone };
}

function check(model, baseline, observed) {
  const violations = [];
  // Batches: private keys all present or all absent. All present = applied.
  const applied = new Set();
  for (const op of model.ops.values()) {
    if (op.kind !== 'batch') continue;
    const prefix = `b${op.id}:`;
    const priv = op.entries.filter((e) => e.key.startsWith(prefix));
    const present = priv.filter((e) => observed.has(e.key));
    if (present.length === priv.length) applied.add(op.id);
    else if (present.length > 0) {
      violations.push({ type: 'torn', op: op.id, acked: op.acked, sync: op.sync, detail: `batch ${op.id} (${op.acked ? 'acknowledged' : 'not acknowledged'}) has ${present.length} of ${priv.length} private keys; missing ${priv.filter((e) => !observed.has(e.key)).slice(0, 5).map((e) => e.key).join(',')}` });
    }
  }
  const keys = new Set([...baseline.keys(), ...model.perKey.keys(), ...observed.keys()]);
  for (const key of keys) {
    const chain = [{ op: undefined, value: baseline.get(key), durable: true }];
    for (const w of model.perKey.get(key) ?? []) chain.push({ op: w.op, value: w.value, durable: w.op.acked || applied.has(w.op.id) });
    let j = 0;
    for (let i = chain.length - 1; i > 0; i--) if (chain[i].durable) { j = i; break; }
    const got = observed.get(key);
    if (chain.slice(j).some((w) => w.value === got)) continue;
    const earlier = chain.findIndex((w) => w.value === got);
    const old = got === undefined ? undefined : history.get(key)?.get(got);
    const lastDurable = chain[j];
    const what = (w) => (w.op ? `op ${w.op.id} (${w.op.kind}${w.op.sync ? ', sync' : ''}${w.op.acked ? ', acknowledged' : ', applied batch'}) wrote ${short(w.value)}` : `baseline ${short(w.value)}`);
    if (earlier >= 0 || got === undefined) {
      violations.push({ type: 'lost', key, op: lastDurable.op?.id, detail: `${key}: ${what(lastDurable)} but recovered ${short(got)}${earlier >= 0 ? ` (from ${earlier === 0 ? 'baseline' : `op ${chain[earlier].op.id}`})` : ''}` });
    } else if (old) {
      // A value from an earlier cycle that a later write had replaced before the baseline.
      violations.push({ type: 'lost', key, op: lastDurable.op?.id, detail: `${key}: ${what(lastDurable)} but recovered ${short(got)}, written by op ${old.id} in cycle ${old.cycle} (${old.acked ? 'acknowledged' : 'not acknowledged'}) and superseded before this cycle's baseline` });
    } else {
      violations.push({ type: 'phantom', key, detail: `${key}: recovered ${short(got)}, which no issued op wrote to this key` });
    }
  }
  return { violations, applied };
}

async function verify(model, baseline) {
  const db = new StemeDB(dir, { writeBufferSize: args.writeBuffer });
  await withTimeout(db.open(), 30_000, 'reopen');
  try {
    const observed = new Map(await withTimeout(db.iterator().all(), 30_000, 'full scan'));
    const result = check(model, baseline, observed);
    // Point reads must agree with the scan.
    const keys = new Set([...baseline.keys(), ...model.perKey.keys(), ...observed.keys()]);
    let n = 0;
    for (const key of keys) {
      const viaSync = db.getSync(key);
      const viaGet = n++ % 8 === 0 ? await db.get(key) : viaSync;
      if (viaSync !== observed.get(key) || viaGet !== observed.get(key)) {
        result.violations.push({ type: 'read', key, detail: `${key}: iterator ${short(observed.get(key))}, getSync ${short(viaSync)}, get ${short(viaGet)}` });
      }
    }
    // Next baseline: drop the batch-private keys (so the key space stays small) with an
    // acknowledged sync batch; the shared keys carry over as recovered.
    const privateKeys = [...observed.keys()].filter((k) => k.startsWith('b'));
    if (privateKeys.length > 0) await db.batch(privateKeys.map((key) => ({ type: 'del', key })), { sync: true });
    const next = new Map([...observed].filter(([k]) => !k.startsWith('b')));
    return { ...result, observed, next };
  } finally {
    await withTimeout(db.close(), 30_000, 'close');
  }
}

function countSsts() {
  try { return fs.readdirSync(path.join(dir, 'kv')).filter((f) => f.endsWith('.sst')).length; } catch { return 0; }
}

// ---- main loop ----

const started = performance.now();
const totals = { cycles: 0, issued: 0, acknowledged: 0, acknowledgedEntries: 0, acknowledgedSync: 0, appliedUnacknowledged: 0, flushCalls: 0, losses: 0, violations: 0, byType: {}, kills: {} };
const printed = { max: 30, n: 0 };
let baseline = new Map();
/** key -> value -> { id, cycle, acked } for every value ever issued, to explain violations. */
const history = new Map();
let nextOpId = 1;
let fatal;

for (let cycle = 1; cycle <= args.cycles; cycle++) {
  const cycleStart = performance.now();
  const childSeed = Math.floor(random() * 2 ** 31);
  const plan = killPlan();
  // The state this cycle starts from, kept (with the baseline) when a check fails.
  const beforeCopy = `${dir}.cycle${cycle}.before`;
  fs.rmSync(beforeCopy, { recursive: true, force: true });
  if (fs.existsSync(dir)) fs.cpSync(dir, beforeCopy, { recursive: true });
  const run = await runWriter(childSeed, nextOpId, plan);
  if (run.openMs !== undefined) lastOpenMs = Math.max(5, run.openMs);
  const model = buildModel(run.lines);
  // The state the writer left, before this process opens it: kept when a check fails.
  const killedCopy = `${dir}.cycle${cycle}.killed`;
  fs.rmSync(killedCopy, { recursive: true, force: true });
  if (fs.existsSync(dir)) fs.cpSync(dir, killedCopy, { recursive: true });
  nextOpId = Math.max(nextOpId, model.maxId + 1);
  const violations = [];
  for (const e of model.writerErrors) violations.push({ type: 'writer', detail: e });
  if (plan.actual === 'timeout') {
    violations.push({ type: 'writer', detail: `the writer did not ${model.ready ? 'flush' : 'finish open()'} within 20 s` });
  }
  if (run.signal !== 'SIGKILL') {
    violations.push({ type: 'writer', detail: `writer exited on its own (code ${run.code}, signal ${run.signal}); stderr: ${run.stderr.slice(-2000)}` });
  }
  const baselineBefore = baseline;
  const verifyStart = performance.now();
  let v;
  try {
    v = await verify(model, baseline);
    violations.push(...v.violations);
  } catch (e) {
    violations.push({ type: 'verify', detail: `reopen/verify failed: ${e && e.stack || e}` });
  }
  const verifyMs = performance.now() - verifyStart;
  const acked = [...model.ops.values()].filter((o) => o.acked);
  const ackedEntries = acked.reduce((s, o) => s + o.entries.length, 0);
  const appliedUnacked = v ? [...v.applied].filter((id) => !model.ops.get(id).acked).length : 0;
  totals.cycles++;
  totals.issued += model.ops.size;
  totals.acknowledged += acked.length;
  totals.acknowledgedEntries += ackedEntries;
  totals.acknowledgedSync += acked.filter((o) => o.sync).length;
  totals.appliedUnacknowledged += appliedUnacked;
  totals.flushCalls += model.flushCalls;
  totals.kills[plan.mode] = (totals.kills[plan.mode] ?? 0) + 1;
  for (const x of violations) {
    totals.violations++;
    if (x.type === 'lost') totals.losses++;
    totals.byType[x.type] = (totals.byType[x.type] ?? 0) + 1;
  }
  const phase = !model.opened ? 'before open' : !model.ready ? 'during open' : `${run.killedAfterReadyMs?.toFixed(0)} ms after open`;
  console.log(
    `cycle ${cycle}/${args.cycles}: seed=${childSeed} kill=${plan.actual ?? plan.mode} (${phase}) ` +
    `issued=${model.ops.size} acked=${acked.length} (${ackedEntries} entries) flushes=${model.flushCalls}/${model.flushDone} ` +
    `openMs=${run.openMs?.toFixed(0) ?? '-'} recoveredKeys=${v ? v.observed.size : '-'} appliedUnackedBatches=${appliedUnacked} ` +
    `ssts=${countSsts()} verifyMs=${verifyMs.toFixed(0)} cycleMs=${(performance.now() - cycleStart).toFixed(0)} violations=${violations.length}`,
  );
  for (const x of violations) {
    if (printed.n++ < printed.max) console.log(`  VIOLATION [${x.type}] cycle ${cycle}: ${x.detail}`);
  }
  if (violations.length > 0 && run.stderr.trim()) console.log(`  writer stderr: ${run.stderr.trim().slice(-2000)}`);
  for (const op of model.ops.values()) {
    for (const e of op.entries) {
      if (e.value === undefined) continue;
      if (!history.has(e.key)) history.set(e.key, new Map());
      history.get(e.key).set(e.value, { id: op.id, cycle, acked: op.acked });
    }
  }
  if (violations.length > 0) {
    console.log(`  the database as the writer left it (before this reopen) is kept at ${killedCopy}`);
    const lines = `${dir}.cycle${cycle}.writer.log`;
    fs.writeFileSync(lines, run.lines.join('\n') + '\n');
    console.log(`  the writer's report lines are in ${lines}`);
    const base = `${dir}.cycle${cycle}.baseline.json`;
    fs.writeFileSync(base, JSON.stringify(Object.fromEntries(baselineBefore), null, 1));
    console.log(`  the database before this cycle is at ${beforeCopy}, its expected contents in ${base}`);
  } else {
    fs.rmSync(killedCopy, { recursive: true, force: true });
    fs.rmSync(beforeCopy, { recursive: true, force: true });
  }
  if (!v) { fatal = 'the database could not be reopened; stopping'; break; }
  if (violations.length > 0 && args.stop) { fatal = 'stopped at the first violation'; break; }
  baseline = v.next;
}

const seconds = (performance.now() - started) / 1000;
console.log(
  `crash-test: seed=${seed} cycles=${totals.cycles} issued=${totals.issued} acknowledged=${totals.acknowledged} ` +
  `(${totals.acknowledgedEntries} entries, ${totals.acknowledgedSync} sync) losses=${totals.losses} violations=${totals.violations} ` +
  `in ${seconds.toFixed(1)} s${fatal ? ` (${fatal})` : ''}`,
);
if (totals.violations > 0) console.log(`crash-test: FAILED; replay with --seed ${seed}; database kept at ${dir}`);
else if (ownDir && !args.keep) fs.rmSync(workRoot, { recursive: true, force: true });
console.log(`RESULT ${JSON.stringify({ seed, seconds: Number(seconds.toFixed(1)), dir, ...totals })}`);
process.exitCode = totals.violations > 0 || totals.cycles < args.cycles ? 1 : 0;
