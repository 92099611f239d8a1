// Micro-benchmarks (tinybench) of StemeDB's hot parts, imported from dist/ (run `npm run build` first).
// Usage: npm run bench:micro -- [--time MS]
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

const { values: flags } = parseArgs({ options: { time: { type: 'string', default: '500' } } });
const KEYS = 100_000;
const PUT = 1; // EntryKind.Put
const RECORD_WRITE = 1; // RingRecord.Write
const data = makeData({ keys: KEYS, valueSize: 100, seed: 42 });
let cursor = 0;
const nextKey = () => data.keyAt(data.order[cursor++ % KEYS]);
const bench = new Bench({ time: Number(flags.time) });
// Sub-microsecond bodies run `inner` times per sample, so the timer's own ~100 ns does not swamp them.
const inners = new Map();
function add(name, inner, body) {
  inners.set(name, inner);
  bench.add(name, inner === 1 ? body : () => { for (let i = 0; i < inner; i++) body(); });
}

// Ring: push one 128-byte record and pop it again, both ends on this thread.
{
  const sab = createRingBuffer(4 * 1024 * 1024);
  const producer = new RingProducer(sab);
  const consumer = new RingConsumer(sab);
  const payload = new Uint8Array(128).fill(7);
  let seen = 0;
  const visit = (record) => { seen += record.length; return true; };
  add('ring push+pop 128 B', 100, () => {
    const at = producer.reserve(RECORD_WRITE, payload.length);
    producer.bytes.set(payload, at);
    producer.publish();
    consumer.release(consumer.scan(consumer.position, consumer.published(), visit));
  });
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
  const inner = inners.get(t.name);
  const ns = (ms) => (ms * 1e6 / inner).toFixed(0);
  return { task: t.name, 'ops/s (median)': Math.round(r.throughput.p50 * inner), 'ns/op p50': ns(r.latency.p50), 'ns/op p99': ns(r.latency.p99), 'calls per sample': inner };
});
console.table(rows);
