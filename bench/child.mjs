// Runs one workload on one engine in this (fresh) process and prints one JSON result line.
// Usage: node bench/child.mjs '{"engine":"stemedb","workload":"fillseq","dir":"/tmp/x","keys":200000,"valueSize":100,"seed":1}'
// Also the entry point for profiling: node --cpu-prof bench/child.mjs '<same JSON>'.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ENGINES } from './engines.mjs';
import { KEY_BYTES, WORKLOADS, makeData } from './workloads.mjs';

/** Bytes this process (all threads) caused to be written to storage, from /proc/self/io. */
function io() {
  const text = fs.readFileSync('/proc/self/io', 'utf8');
  const field = (name) => Number(new RegExp(`^${name}: (\\d+)`, 'm').exec(text)?.[1] ?? NaN);
  return { written: field('write_bytes'), cancelled: field('cancelled_write_bytes') };
}

/** Allocated bytes (st_blocks) of every file under dir. */
function diskUsage(dir) {
  let bytes = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    bytes += entry.isDirectory() ? diskUsage(p) : fs.statSync(p).blocks * 512;
  }
  return bytes;
}

const spec = JSON.parse(process.argv[2]);
const workload = WORKLOADS[spec.workload];
const engine = ENGINES[spec.engine];
if (!workload || !engine) throw new Error(`unknown workload or engine in ${process.argv[2]}`);
const data = makeData(spec);
const n = Math.min(workload.count(spec.keys), spec.keys);
const latencies = workload.latency ? new Float64Array(n) : null;
const rssBefore = process.memoryUsage().rss;

const io0 = io();
const db = await engine.open(spec.dir, { durable: !!workload.durable });
const t0 = performance.now();
const ops = await workload.run(db, data, n, latencies);
const seconds = (performance.now() - t0) / 1000;
const engineStats = db.stats();
await db.close();
const io1 = io();

const result = {
  engine: spec.engine, workload: spec.workload, ops, seconds,
  opsPerSec: ops / seconds,
  rssBeforeOpenBytes: rssBefore,
  peakRssBytes: process.resourceUsage().maxRSS * 1024,
  bytesWritten: io1.written - io0.written,
  bytesCancelled: io1.cancelled - io0.cancelled,
  userBytes: spec.workload.startsWith('read') ? 0 : ops * (KEY_BYTES + spec.valueSize),
  diskBytes: diskUsage(spec.dir),
};
if (latencies) {
  latencies.sort();
  const at = (p) => latencies[Math.min(n - 1, Math.floor(n * p))] * 1000;
  Object.assign(result, { p50Micros: at(0.5), p99Micros: at(0.99), p999Micros: at(0.999) });
}
if (engineStats) {
  const { writeAmplification, bytesWrittenToDisk, userBytesWritten, compactions, flushes, stallMillis } = engineStats;
  result.engineStats = { writeAmplification, bytesWrittenToDisk, userBytesWritten, compactions, flushes, stallMillis };
}
process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(0));
