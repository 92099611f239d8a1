// A small ingestion benchmark for StemeDB alone (the peer comparison harness is a later issue).
// db_bench-style data: 16-byte zero-padded decimal keys, 100-byte values that are 50 random
// bytes repeated twice (about 50% compressible), random order from a seeded permutation.
// Usage: npm run bench -- [--keys N] [--seed S] [--dir D]
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { StemeDB } from '../dist/index.js';

const args = Object.fromEntries(process.argv.slice(2).join(' ').split('--').filter(Boolean).map((a) => a.trim().split(/\s+/)));
const keys = Number(args.keys ?? 200_000);
const seed = Number(args.seed ?? Math.floor(Math.random() * 2 ** 31));
const root = args.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'stemedb-bench-'));
console.log(`stemedb bench: keys=${keys} seed=${seed} dir=${root} node=${process.version} cpus=${os.availableParallelism()}`);

let state = seed >>> 0;
const random = () => { state = (state + 0x6d2b79f5) >>> 0; let t = state; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
const order = Array.from({ length: keys }, (_, i) => i);
for (let i = keys - 1; i > 0; i--) { const j = Math.floor(random() * (i + 1)); [order[i], order[j]] = [order[j], order[i]]; }
const key = (i) => Buffer.from(String(i).padStart(16, '0'));
const value = () => { const half = Buffer.alloc(50); for (let i = 0; i < 50; i++) half[i] = Math.floor(random() * 256); return Buffer.concat([half, half]); };
const values = Array.from({ length: 1024 }, value);
const opts = { keyEncoding: 'buffer', valueEncoding: 'buffer' };

function percentile(sorted, p) { return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]; }
const rows = [];
async function run(name, count, body) {
  const dir = path.join(root, name);
  const db = new StemeDB(dir, opts);
  await db.open();
  const latencies = [];
  const start = performance.now();
  await body(db, latencies);
  const seconds = (performance.now() - start) / 1000;
  await db.close();
  latencies.sort((a, b) => a - b);
  const du = fs.readdirSync(path.join(dir, 'kv')).reduce((n, f) => n + fs.statSync(path.join(dir, 'kv', f)).size, 0)
    + fs.readdirSync(path.join(dir, 'wal')).reduce((n, f) => n + fs.statSync(path.join(dir, 'wal', f)).size, 0);
  rows.push({ workload: name, ops: count, 'ops/s': Math.round(count / seconds), 'p50 µs': latencies.length ? Math.round(percentile(latencies, 0.5) * 1000) : '', 'p99 µs': latencies.length ? Math.round(percentile(latencies, 0.99) * 1000) : '', 'disk MB': (du / 1e6).toFixed(1), 'rss MB': Math.round(process.memoryUsage().rss / 1e6) });
  console.error(`  ${name} done`);
  return dir;
}

await run('fillrandom-batch', keys, async (db) => {
  for (let b = 0; b < keys; b += 1000) {
    const ops = [];
    for (let i = b; i < Math.min(keys, b + 1000); i++) ops.push({ type: 'put', key: key(order[i]), value: values[i & 1023] });
    await db.batch(ops);
  }
});
const single = Math.min(keys, 50_000);
await run('fillrandom-single', single, async (db, lat) => {
  for (let i = 0; i < single; i++) { const t = performance.now(); await db.put(key(order[i]), values[i & 1023]); lat.push(performance.now() - t); }
});
await run('fillrandom-concurrent', keys, async (db, lat) => {
  let next = 0;
  const worker = async () => { while (next < keys) { const i = next++; const t = performance.now(); await db.put(key(order[i]), values[i & 1023]); lat.push(performance.now() - t); } };
  await Promise.all(Array.from({ length: 64 }, worker));
});
const syncs = Math.min(keys, 20_000);
await run('fillsync-concurrent', syncs, async (db, lat) => {
  let next = 0;
  const worker = async () => { while (next < syncs) { const i = next++; const t = performance.now(); await db.put(key(order[i]), values[i & 1023], { sync: true }); lat.push(performance.now() - t); } };
  await Promise.all(Array.from({ length: 64 }, worker));
});
const readDir = path.join(root, 'fillrandom-batch');
for (const mode of ['sync', 'async']) {
  const db = new StemeDB(readDir, opts);
  await db.open();
  const n = Math.min(keys, 100_000);
  const start = performance.now();
  let found = 0;
  if (mode === 'sync') for (let i = 0; i < n; i++) found += db.getSync(key(order[(i * 7919) % keys])) ? 1 : 0;
  else for (let i = 0; i < n; i++) found += (await db.get(key(order[(i * 7919) % keys]))) ? 1 : 0;
  const seconds = (performance.now() - start) / 1000;
  if (found !== n) throw new Error(`readrandom-${mode} found ${found} of ${n}`);
  rows.push({ workload: `readrandom-${mode}`, ops: n, 'ops/s': Math.round(n / seconds), 'p50 µs': '', 'p99 µs': '', 'disk MB': '', 'rss MB': Math.round(process.memoryUsage().rss / 1e6) });
  await db.close();
}
{
  const db = new StemeDB(readDir, opts);
  await db.open();
  const start = performance.now();
  let count = 0;
  const it = db.iterator();
  for (let batch = await it.nextv(1000); batch.length; batch = await it.nextv(1000)) count += batch.length;
  await it.close();
  const seconds = (performance.now() - start) / 1000;
  rows.push({ workload: 'readseq', ops: count, 'ops/s': Math.round(count / seconds), 'p50 µs': '', 'p99 µs': '', 'disk MB': '', 'rss MB': Math.round(process.memoryUsage().rss / 1e6) });
  await db.close();
}
console.table(rows);
if (!args.dir) fs.rmSync(root, { recursive: true, force: true });
