// SharedBlockCache (src/shm/shared-block-cache.ts): layout, a seeded model test against a Map,
// CLOCK behaviour, main-thread lock policy, and a cross-thread torture test that validates every
// hit byte for byte. Seeded (CACHE_TEST_SEED); the seed is printed.
import * as path from 'node:path';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { SharedBlockCache, sharedBlockCacheRegions } from '../dist/shm/shared-block-cache.js';
// @ts-expect-error plain ESM fixture without types
import { blockFor, checkBlock, pickKey, rng, FILES } from './fixtures/cache-content.mjs';

const SEED = Number(process.env.CACHE_TEST_SEED ?? Date.now() % 1_000_000_007);
console.log(`shared-block-cache.test.ts seed=${SEED}`);
const lockFixture = path.join(__dirname, 'fixtures', 'cache-lock-worker.mjs');
const stressFixture = path.join(__dirname, 'fixtures', 'cache-stress-worker.mjs');

function bytesOf(seed: number, length: number): Uint8Array {
  const r = rng(seed);
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = Math.floor(r() * 256);
  return out;
}

function same(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  return a !== undefined && b !== undefined && Buffer.from(a.buffer, a.byteOffset, a.length).equals(b);
}

describe('SharedBlockCache layout', () => {
  it('regions tile the buffer without overlap for every capacity, and capacity is bounded', () => {
    for (const capacity of [64 * 1024, 64 * 1024 + 3, 1_000_000, 8 * 1024 * 1024, 1024 * 1024 * 1024]) {
      const r = sharedBlockCacheRegions(capacity);
      expect(r.indexByte).toBeLessThan(r.refsByte);
      expect(r.refsByte + r.slotCount).toBeLessThanOrEqual(r.arenaByte);
      expect(r.arenaByte + r.arenaBytes).toBe(r.totalBytes);
      expect(r.arenaBytes).toBeLessThanOrEqual(capacity);
      expect(r.slotCount & (r.slotCount - 1)).toBe(0);
    }
    expect(() => sharedBlockCacheRegions(1024)).toThrow(/between/);
    expect(() => sharedBlockCacheRegions(2 ** 31)).toThrow(/between/);
  });

  it('attach() sees the same cache and rejects a foreign buffer', () => {
    const a = SharedBlockCache.create(256 * 1024);
    const b = SharedBlockCache.attach(a.buffer);
    expect(a.insert(7, 4096, Uint8Array.of(1, 2, 3))).toBe(true);
    expect(b.get(7, 4096)).toEqual(Uint8Array.of(1, 2, 3));
    expect(b.stats.blocks).toBe(1);
    expect(() => SharedBlockCache.attach(new SharedArrayBuffer(4096))).toThrow(/magic/);
  });
});

describe('SharedBlockCache single thread', () => {
  it('get returns a private copy', () => {
    const c = SharedBlockCache.create(128 * 1024);
    const data = bytesOf(1, 4096);
    c.insert(1, 0, data);
    data[0] ^= 0xff; // the cache copied on insert
    const got = c.get(1, 0)!;
    expect(got[0]).toBe(data[0] ^ 0xff);
    expect(got.buffer).not.toBeInstanceOf(SharedArrayBuffer);
    got[1] ^= 0xff; // and on get
    expect(c.get(1, 0)![1]).toBe(got[1] ^ 0xff);
    // Pool copies never overlap each other; oversized and unpooled copies work too.
    const a = c.get(1, 0)!;
    const b = c.get(1, 0)!;
    a.fill(0);
    expect(same(b, c.get(1, 0))).toBe(true);
    const unpooled = SharedBlockCache.attach(c.buffer, { copyPoolBytes: 0 });
    expect(same(unpooled.get(1, 0), b)).toBe(true);
  });

  for (const readMode of ['seqlock', 'lock'] as const) {
    it(`model test against a Map (readMode ${readMode}): right bytes, bytes <= capacity, right counters`, async () => {
      const random = rng(SEED);
      const capacity = 96 * 1024 + 8 * Math.floor(random() * 4096);
      const c = SharedBlockCache.create(capacity, { readMode });
      const model = new Map<string, Uint8Array>();
      const key = (f: number, o: number) => `${f}/${o}`;
      let hits = 0;
      let misses = 0;
      let expectedHits = 0;
      for (let op = 0; op < 30_000; op++) {
        const r = random();
        const [file, offset] = pickKey(random);
        if (r < 0.4) {
          const data = bytesOf(op, random() < 0.05 ? Math.floor(random() * 20_000) : Math.floor(random() * 4200));
          const cached = c.insert(file, offset, data);
          if (data.length + 24 <= capacity / 8) expect(cached).toBe(true);
          if (cached) {
            model.set(key(file, offset), data);
            // Just inserted and single-threaded: it must hit.
            expect(same(c.get(file, offset), data)).toBe(true);
            hits++;
            expectedHits++;
          }
          // A refused (oversized) insert leaves any earlier entry, as the model does.
        } else if (r < 0.42) {
          c.evictFile(file);
          for (const k of [...model.keys()]) if (k.startsWith(`${file}/`)) model.delete(k);
        } else if (r < 0.4205) {
          c.clear();
          model.clear();
        } else {
          const got = c.get(file, offset);
          const want = model.get(key(file, offset));
          if (got === undefined) misses++;
          else {
            hits++;
            expect(want).toBeDefined();
            expect(same(got, want)).toBe(true);
          }
        }
        const s = c.stats;
        expect(s.bytes).toBeLessThanOrEqual(s.capacityBytes);
        expect(s.arenaUsedBytes).toBeLessThanOrEqual(s.capacityBytes);
        expect(s.blocks).toBeLessThanOrEqual(model.size);
        if (op % 1000 === 0) await c.checkInvariants();
      }
      await c.checkInvariants();
      const s = c.stats;
      expect(s.hits).toBe(hits);
      expect(s.misses).toBe(misses);
      expect(expectedHits).toBeGreaterThan(1000);
      // Every cached block is one the model has, with its bytes.
      let found = 0;
      for (const [k, want] of model) {
        const [f, o] = k.split('/').map(Number);
        const got = c.get(f, o);
        if (got !== undefined) { found++; expect(same(got, want)).toBe(true); }
      }
      expect(found).toBe(c.stats.blocks);
      console.log(`model ${readMode}: capacity ${s.capacityBytes}, blocks ${s.blocks}, bytes ${s.bytes}, evictions ${s.evictions}, second chances ${s.secondChances}, rebuilds ${s.indexRebuilds}`);
    });
  }

  it('an oversized insert does not leave the old bytes behind', () => {
    const c = SharedBlockCache.create(64 * 1024);
    expect(c.insert(1, 0, bytesOf(1, 100))).toBe(true);
    // Too big for the cache: refused. The old entry for the key is still the right bytes for that key
    // (SST blocks never change), so it may stay.
    expect(c.insert(1, 0, new Uint8Array(64 * 1024))).toBe(false);
    expect(c.stats.insertsSkipped).toBe(1);
  });

  it('CLOCK: a block read between inserts survives a stream of cold blocks (second chance)', async () => {
    const c = SharedBlockCache.create(256 * 1024);
    const hot = bytesOf(42, 4096);
    c.insert(1, 0, hot);
    for (let i = 1; i < 2000; i++) {
      c.insert(2, i * 4096, bytesOf(i, 4096));
      expect(same(c.get(1, 0), hot)).toBe(true);
    }
    expect(c.stats.secondChances).toBeGreaterThan(0);
    expect(c.stats.evictions).toBeGreaterThan(1500);
    // Cold blocks are evicted in insertion order.
    expect(c.get(2, 4096)).toBeUndefined();
    expect(c.get(2, 1999 * 4096)).toBeDefined();
    await c.checkInvariants();
  });

  it('evictFile and clear; many small blocks are capped by the index and trigger rebuilds, not overflow', async () => {
    const c = SharedBlockCache.create(64 * 1024);
    for (let i = 0; i < 5000; i++) c.insert(1 + (i % 3), i * 16, bytesOf(i, 8));
    await c.checkInvariants();
    const s = c.stats;
    expect(s.blocks).toBeLessThanOrEqual(s.slotCount / 2);
    expect(s.indexRebuilds).toBeGreaterThan(0); // tombstones piled up and the index was rebuilt
    c.evictFile(2);
    await c.checkInvariants();
    for (let i = 0; i < 5000; i++) if (i % 3 === 1) expect(c.get(2, i * 16)).toBeUndefined();
    c.clear();
    expect(c.stats).toMatchObject({ blocks: 0, bytes: 0, arenaUsedBytes: 0, tombstones: 0 });
    await c.checkInvariants();
  });

  it('main thread never waits: with the lock held elsewhere, insert is dropped and evictFile is deferred', async () => {
    const c = SharedBlockCache.create(64 * 1024);
    c.insert(5, 0, Uint8Array.of(5));
    const holder = new Worker(lockFixture, { workerData: { buffer: c.buffer, index: 0, mode: 'hold', timeoutMs: 1000 } });
    expect((await once(holder, 'message'))[0]).toBe('held');
    expect(c.insert(6, 0, Uint8Array.of(6))).toBe(false);
    c.evictFile(5); // deferred, returns at once
    expect(c.get(5, 0)).toEqual(Uint8Array.of(5)); // reads stay lock-free
    holder.postMessage('release');
    await c.settled();
    expect(c.get(5, 0)).toBeUndefined();
    expect(c.get(6, 0)).toBeUndefined();
    await holder.terminate();
  });
});

describe('SharedBlockCache across threads', () => {
  for (const readMode of ['seqlock', 'lock'] as const) {
    it(`2 workers insert/evict/read while the main thread reads: never torn or wrong bytes (readMode ${readMode})`, async () => {
      const cache = SharedBlockCache.create(192 * 1024, { readMode });
      const stop = new SharedArrayBuffer(4);
      const workers = [1, 2].map((n) => new Worker(stressFixture, { workerData: { buffer: cache.buffer, stop, seed: SEED + n, readMode } }));
      const results = workers.map((w) => once(w, 'message'));
      const random = rng(SEED);
      let hits = 0;
      let misses = 0;
      const deadline = performance.now() + 3000;
      while (performance.now() < deadline) {
        for (let i = 0; i < 1000; i++) {
          const [file, offset] = pickKey(random);
          const got = cache.get(file, offset);
          if (got === undefined) misses++;
          else { checkBlock(file, offset, got); hits++; }
        }
        if (random() < 0.05) cache.evictFile(FILES[Math.floor(random() * FILES.length)]);
        await new Promise((r) => setImmediate(r)); // let deferred evictions run
      }
      Atomics.store(new Int32Array(stop), 0, 1);
      const done = (await Promise.all(results)).map(([m]) => m);
      await Promise.all(workers.map((w) => w.terminate()));
      for (const d of done) expect(d.error).toBeUndefined();
      await cache.settled();
      await cache.checkInvariants();
      const s = cache.stats;
      console.log(`stress ${readMode}: main hits ${hits} misses ${misses}; workers ${JSON.stringify(done)}; ` +
        `evictions ${s.evictions}, second chances ${s.secondChances}, rebuilds ${s.indexRebuilds}, read retries ${s.readRetries}, inserts skipped ${s.insertsSkipped}`);
      expect(hits).toBeGreaterThan(1000);
      expect(done.every((d) => d.inserts > 1000 && d.hits > 1000)).toBe(true);
      expect(s.evictions).toBeGreaterThan(1000);
      expect(s.bytes).toBeLessThanOrEqual(s.capacityBytes);
      // Every block still cached is the right one.
      for (const file of FILES) for (let o = 0; o < 48; o++) {
        for (const offset of [o * 4096, o * 4096 + 2 ** 33]) {
          const got = cache.get(file, offset);
          if (got !== undefined) checkBlock(file, offset, got);
        }
      }
    });
  }
});
