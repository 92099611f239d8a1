// Workload definitions and db_bench-style data: 16-byte zero-padded decimal keys, values made of
// valueSize/2 random bytes repeated twice (about 50% compressible), random order from a seeded
// permutation. Everything is derived from the seed, so every engine sees the same operations.

export const KEY_BYTES = 16;
const VALUE_POOL = 65_536; // distinct values; op i uses value i mod VALUE_POOL
const BATCH = 1000;
const IN_FLIGHT = 64;
/** readseq: entries per nextv() call (and per latency sample). */
export const SCAN_CHUNK = 1000;

/** mulberry32: a small seeded PRNG returning uint32. */
export function prng(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

function permutation(n, seed) {
  const next = prng(seed);
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = next() % (i + 1);
    const t = order[i]; order[i] = order[j]; order[j] = t;
  }
  return order;
}

/** Keys and values live in two large buffers; keyAt/valueAt return views (no per-op allocation). */
export function makeData({ keys, valueSize, seed }) {
  const keyBuf = Buffer.alloc(keys * KEY_BYTES);
  for (let i = 0; i < keys; i++) {
    // String(i).padStart(16, '0'), written digit by digit (5x faster than Buffer.write).
    for (let at = (i + 1) * KEY_BYTES - 1, rest = i; at >= i * KEY_BYTES; at--, rest = Math.floor(rest / 10)) keyBuf[at] = 48 + (rest % 10);
  }
  const next = prng(seed ^ 0x5a5a5a5a);
  const valueBuf = Buffer.alloc(VALUE_POOL * valueSize);
  const half = Math.ceil(valueSize / 2);
  for (let v = 0; v < VALUE_POOL; v++) {
    const at = v * valueSize;
    for (let b = 0; b < half; b++) valueBuf[at + b] = next() & 0xff;
    for (let b = half; b < valueSize; b++) valueBuf[at + b] = valueBuf[at + b - half];
  }
  let second;
  return {
    keys,
    valueSize,
    /** The write order (a seeded permutation of 0..keys-1). */
    order: permutation(keys, seed),
    /** A second, independent permutation for overwrite and read order. */
    get order2() { return (second ??= permutation(keys, (seed ^ 0x9e3779b9) >>> 0)); },
    keyAt: (k) => keyBuf.subarray(k * KEY_BYTES, (k + 1) * KEY_BYTES),
    valueAt: (i) => valueBuf.subarray((i % VALUE_POOL) * valueSize, (i % VALUE_POOL + 1) * valueSize),
  };
}

// ---- workload bodies: (db adapter, data, n ops, latency array or null) -> ops done

function batched(keyOf, valueOffset = 0) {
  return async (db, data, n, lat) => {
    for (let b = 0; b < n; b += BATCH) {
      const ops = [];
      for (let i = b; i < Math.min(n, b + BATCH); i++) ops.push({ type: 'put', key: data.keyAt(keyOf(data, i)), value: data.valueAt(i + valueOffset) });
      const t = performance.now();
      await db.batch(ops);
      if (lat) lat[b / BATCH] = performance.now() - t;
    }
    return n;
  };
}

function puts(inFlight, sync) {
  return async (db, data, n, lat) => {
    let next = 0;
    const worker = async () => {
      while (next < n) {
        const i = next++;
        const t = performance.now();
        await db.put(data.keyAt(data.order[i]), data.valueAt(i), sync);
        lat[i] = performance.now() - t;
      }
    };
    await Promise.all(Array.from({ length: Math.min(inFlight, n) }, worker));
    return n;
  };
}

function reads(sync) {
  return async (db, data, n, lat) => {
    const order = data.order2;
    let found = 0;
    for (let i = 0; i < n; i++) {
      const key = data.keyAt(order[i]);
      const t = performance.now();
      const value = sync ? db.getSync(key) : await db.get(key);
      lat[i] = performance.now() - t;
      if (value !== undefined) found++;
    }
    if (found !== n) throw new Error(`readrandom found ${found} of ${n} keys`);
    return n;
  };
}

async function readseq(db, data, n, lat) {
  n = await db.scan(lat, SCAN_CHUNK);
  if (n !== data.keys) throw new Error(`readseq saw ${n} of ${data.keys} keys`);
  return n;
}

/**
 * count(keys): operations timed. prefilled: runs on a copy of a database filled by `prefill`
 * in another process (so it starts with a reopen). durable: the engine must make each write
 * durable before acknowledging it. latency: what one latency sample times: 'op' (one put or get:
 * the single-op workloads), 'batch' (one db.batch of BATCH puts) or 'nextv' (one nextv(SCAN_CHUNK)
 * call). capped: the op count is a sample of the key space, so a --max-ops cap may lower it
 * (never for the fills that build the whole database, nor readseq).
 */
const op = 'op', batch = 'batch', nextv = 'nextv';
export const WORKLOADS = {
  'fillseq': { count: (k) => k, latency: batch, run: batched((d, i) => i) },
  'fillrandom-batch': { count: (k) => k, latency: batch, run: batched((d, i) => d.order[i]) },
  'fillrandom-single': { count: (k) => Math.ceil(k / 10), capped: true, latency: op, run: puts(1, false) },
  'fillrandom-concurrent': { count: (k) => Math.ceil(k / 5), capped: true, latency: op, run: puts(IN_FLIGHT, false) },
  'fillsync-concurrent': { count: (k) => Math.min(Math.ceil(k / 20), 50_000), capped: true, durable: true, latency: op, run: puts(IN_FLIGHT, true) },
  'fillsync-single': { count: (k) => Math.min(Math.ceil(k / 200), 5_000), capped: true, durable: true, latency: op, run: puts(1, true) },
  'overwrite': { count: (k) => k, prefilled: true, latency: batch, run: batched((d, i) => d.order2[i], 7919) },
  'readrandom-async': { count: (k) => Math.ceil(k / 10), capped: true, prefilled: true, latency: op, run: reads(false) },
  'readrandom-sync': { count: (k) => Math.ceil(k / 4), capped: true, prefilled: true, latency: op, run: reads(true) },
  'readseq': { count: (k) => k, prefilled: true, latency: nextv, run: readseq },
  // Not reported: builds the database the prefilled workloads copy (fillrandom-batch builds the same one).
  'prefill': { count: (k) => k, hidden: true, run: batched((d, i) => d.order[i]) },
};

/** Ops timed for a workload: count(keys), at most keys, and at most maxOps where the workload is capped. */
export function opsFor(workload, keys, maxOps) {
  const n = Math.min(workload.count(keys), keys);
  return workload.capped && maxOps > 0 ? Math.min(n, maxOps) : n;
}

/** Latency samples a run of n ops records (the array child.mjs allocates). */
export function latencySamples(workload, n, keys) {
  if (workload.latency === op) return n;
  if (workload.latency === batch) return Math.ceil(n / BATCH);
  if (workload.latency === nextv) return Math.ceil(keys / SCAN_CHUNK) + 1;
  return 0;
}

/** Descriptions of the latency units, for tables and charts. */
export const LATENCY_UNITS = { op: 'one op', batch: `one batch of ${BATCH}`, nextv: `one nextv(${SCAN_CHUNK})` };
