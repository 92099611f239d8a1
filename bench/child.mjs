// Runs one workload on one engine in this (fresh) process and prints one JSON result line.
// Usage: node bench/child.mjs '{"engine":"stemedb","workload":"fillseq","dir":"/tmp/x","keys":200000,"valueSize":100,"seed":1}'
// Optional spec field maxOps caps the op count of the workloads marked capped (see workloads.mjs).
// Peak RSS and bytes written are this process's own (all its threads): each run is a fresh child.
// Also the entry point for profiling: node --cpu-prof bench/child.mjs '<same JSON>'.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ENGINES } from './engines.mjs';
import { KEY_BYTES, WORKLOADS, latencySamples, makeData, opsFor } from './workloads.mjs';

/** The latency distribution each run reports: these quantiles, plus the maximum. */
const QUANTILES = [0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999];

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
if (workload.prefilled) void data.order2; // allocate the second permutation before the RSS baseline
const n = opsFor(workload, spec.keys, spec.maxOps);
const samples = latencySamples(workload, n, spec.keys);
// NaN marks a slot the run did not fill (readseq's sample count depends on the engine); filling
// also touches the pages now, so they count in the baseline rather than in the engine's peak.
const latencies = samples > 0 ? new Float64Array(samples).fill(NaN) : null;
const rssBefore = process.memoryUsage().rss;

const io0 = io();
const tOpen = performance.now();
const db = await engine.open(spec.dir, { durable: !!workload.durable });
const t0 = performance.now();
const ops = await workload.run(db, data, n, latencies);
const seconds = (performance.now() - t0) / 1000;
const engineStats = db.stats();
const tClose = performance.now();
await db.close();
const closeSeconds = (performance.now() - tClose) / 1000;
const io1 = io();

const result = {
  engine: spec.engine, workload: spec.workload, keys: spec.keys, ops, seconds,
  opsPerSec: ops / seconds,
  openSeconds: (t0 - tOpen) / 1000,
  closeSeconds,
  rssBeforeOpenBytes: rssBefore,
  peakRssBytes: process.resourceUsage().maxRSS * 1024,
  bytesWritten: io1.written - io0.written,
  bytesCancelled: io1.cancelled - io0.cancelled,
  userBytes: spec.workload.startsWith('read') ? 0 : ops * (KEY_BYTES + spec.valueSize),
  diskBytes: diskUsage(spec.dir),
};
if (latencies) {
  const xs = latencies.filter((x) => !Number.isNaN(x)).sort();
  const at = (p) => xs[Math.min(xs.length - 1, Math.floor(xs.length * p))] * 1000;
  Object.assign(result, {
    latencyUnit: workload.latency, latencySamples: xs.length,
    p50Micros: at(0.5), p99Micros: at(0.99), p999Micros: at(0.999), maxMicros: xs[xs.length - 1] * 1000,
    latencyQuantiles: QUANTILES.map((p) => [p, at(p)]),
  });
}
if (engineStats) {
  const { writeAmplification, bytesWrittenToDisk, userBytesWritten, compactions, flushes, stallMillis } = engineStats;
  result.engineStats = { writeAmplification, bytesWrittenToDisk, userBytesWritten, compactions, flushes, stallMillis };
}
process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(0));
