// Micro-benchmarks (tinybench) of StemeDB's hot parts, imported from dist/ (run `npm run build` first):
// ring-buffer push and pop, memtable insert and lookup, block encode and decode, bloom probe, LZ4
// block round trip, xxhash on 16-byte keys and on 4 KiB blocks. Prints a table; writes JSON to
// bench/results/micro-<time>.json.
// Usage: npm run bench:micro -- [--time MS] [--quick] [--filter SUBSTRING]
//   --quick: 100 ms per task (about 5 s in all) instead of 500 ms.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Bench } from 'tinybench';
import { checksum32 } from '../dist/common/checksum.js';
import { compressBlock, decompressBlock } from '../dist/common/compression.js';
import { SEQUENCE_MAX, makeInternalKey } from '../dist/common/keys.js';
import { Memtable } from '../dist/shm/memtable.js';
import { RingConsumer, RingProducer, createRingBuffer } from '../dist/shm/ring.js';
import { Block } from '../dist/sst/block.js';
import { BlockBuilder } from '../dist/sst/block-builder.js';
import { BloomBuilder, BloomFilter } from '../dist/sst/bloom.js';
import { makeData } from './workloads.mjs';

const { values: flags } = parseArgs({
  options: { time: { type: 'string' }, quick: { type: 'boolean', default: false }, filter: { type: 'string', default: '' } },
});
const timeMs = Number(flags.time ?? (flags.quick ? 100 : 500));
const KEYS = 100_000;
const PUT = 1; // EntryKind.Put
const RECORD_WRITE = 1; // RingRecord.Write
const data = makeData({ keys: KEYS, valueSize: 100, seed: 42 });
let cursor = 0;
const nextKey = () => data.keyAt(data.order[cursor++ % KEYS]);
const bench = new Bench({ time: timeMs, warmupTime: Math.min(100, timeMs) });
// Sub-microsecond bodies run `inner` times per sample, so the timer's own ~100 ns does not swamp them.
// hooks: tinybench beforeEach/afterEach, run around each sample outside the timed part.
const inners = new Map();
function add(name, inner, body, hooks) {
  if (!name.includes(flags.filter)) return;
  inners.set(name, inner);
  bench.add(name, inner === 1 ? body : () => { for (let i = 0; i < inner; i++) body(); }, hooks);
}

// Ring: 128-byte records, both ends on this thread. Push and pop are timed apart (the other end
// runs in an untimed hook), and together.
{
  const PER_SAMPLE = 100;
  const sab = createRingBuffer(4 * 1024 * 1024);
  const producer = new RingProducer(sab);
  const consumer = new RingConsumer(sab);
  const payload = new Uint8Array(128).fill(7);
  let seen = 0;
  const visitAll = (record) => { seen += record.length; return true; };
  const visitOne = (record) => { seen += record.length; return false; };
  const push = () => {
    const at = producer.reserve(RECORD_WRITE, payload.length);
    if (at < 0) throw new Error('ring full');
    producer.bytes.set(payload, at);
    producer.publish();
  };
  const pop = () => { consumer.release(consumer.scan(consumer.position, consumer.published(), visitOne)); };
  const drain = () => { consumer.release(consumer.scan(consumer.position, consumer.published(), visitAll)); };
  const fill = () => { for (let i = 0; i < PER_SAMPLE; i++) push(); };
  add('ring push 128 B (reserve, copy, publish)', PER_SAMPLE, push, { afterEach: drain });
  add('ring pop 128 B (scan one, release)', PER_SAMPLE, pop, { beforeEach: fill, afterEach: drain });
  add('ring push+pop 128 B', PER_SAMPLE, () => { push(); drain(); });
}

// Memtable: inserts into a 4 MiB arena (a fresh one when full); lookups in a full one.
{
  let table = Memtable.create(4 * 1024 * 1024);
  let sequence = 1;
  add('memtable add (16 B key, 100 B value, 4 MiB arena)', 10, () => {
    const i = sequence++;
    if (!table.add(i, PUT, nextKey(), data.valueAt(i))) table = Memtable.create(4 * 1024 * 1024);
  });
  const full = Memtable.create(4 * 1024 * 1024);
  let n = 0;
  while (full.add(n + 1, PUT, data.keyAt(data.order[n]), data.valueAt(n))) n++;
  let probe = 0;
  add(`memtable get (hit, ${n} entries)`, 10, () => {
    if (!full.get(data.keyAt(data.order[probe++ % n]), SEQUENCE_MAX)) throw new Error('missing key');
  });
}

// Block: build a ~4 KiB data block of internal keys; decode it and seek a random key.
const internalKeys = Array.from({ length: KEYS }, (_, k) => makeInternalKey(data.keyAt(k), k + 1, PUT));
const builder = new BlockBuilder(16);
function buildBlock(first) {
  builder.reset();
  for (let k = first; builder.estimatedSize < 4096; k++) builder.add(internalKeys[k], data.valueAt(k));
  return builder.finish().slice();
}
const block = buildBlock(0);
const blockEntries = builder.entryCount;
{
  let first = 0;
  add(`block build (${blockEntries} entries, 4 KiB)`, 1, () => { buildBlock(first); first = (first + blockEntries) % (KEYS - 100); });
  let probe = 0;
  add('block decode + seek', 10, () => {
    const it = new Block('micro', 0, block).iterator();
    it.seek(internalKeys[probe++ % blockEntries]);
    if (!it.valid()) throw new Error('seek failed');
  });
  add('block full scan (iterator next)', 10, () => {
    const it = new Block('micro', 0, block).iterator();
    let n = 0;
    for (it.seekToFirst(); it.valid(); it.next()) n++;
    if (n !== blockEntries) throw new Error('scan count');
  });
}

// Bloom: 10 bits/key over KEYS/2 keys; probes alternate present and absent keys.
{
  const b = new BloomBuilder(10);
  for (let k = 0; k < KEYS; k += 2) b.addKey(data.keyAt(k));
  const filter = new BloomFilter(b.finish());
  let probe = 0;
  add('bloom mayContain (half present)', 100, () => { filter.mayContain(data.keyAt(probe++ % KEYS)); });
}

// LZ4 round trip on the 4 KiB data block built above.
{
  const frame = compressBlock(block);
  if (!frame) throw new Error('block did not compress');
  console.log(`lz4: ${block.length} B block -> ${frame.length} B`);
  add('lz4 compress 4 KiB block', 1, () => { compressBlock(block); });
  add('lz4 decompress 4 KiB block', 1, () => { decompressBlock(frame, block.length); });
  add('lz4 round trip 4 KiB block', 1, () => {
    const back = decompressBlock(compressBlock(block), block.length);
    if (back.length !== block.length) throw new Error('lz4 round trip length');
  });
}

// xxhash (checksum32 = xxhash-wasm h32Raw).
{
  const key = data.keyAt(12345);
  const page = new Uint8Array(4096).map((_, i) => (i * 31) & 0xff);
  add('xxh32 16 B key', 100, () => { checksum32(key); });
  add('xxh32 4 KiB block', 10, () => { checksum32(page); });
}

await bench.run();
const rows = bench.tasks.map((t) => {
  const r = t.result;
  if (r.error || !r.latency) throw new Error(`${t.name} failed: ${r.error?.stack ?? r.error ?? r.state}`);
  const inner = inners.get(t.name);
  const ns = (ms) => (ms * 1e6 / inner).toFixed(0);
  return { task: t.name, 'ops/s (median)': Math.round(r.throughput.p50 * inner), 'ns/op p50': ns(r.latency.p50), 'ns/op p99': ns(r.latency.p99), 'calls per sample': inner, samples: r.latency.samplesCount ?? r.latency.samples?.length };
});
console.table(rows);
const outDir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'results');
fs.mkdirSync(outDir, { recursive: true });
const stamp = new Date().toISOString().replace(/[:.]/g, '-');
fs.writeFileSync(path.join(outDir, `micro-${stamp}.json`), JSON.stringify({
  meta: { date: new Date().toISOString(), timeMs, node: process.version, cpus: os.availableParallelism() }, rows,
}, null, 2));
console.log(`results in bench/results/micro-${stamp}.json`);
