// The two-tier block cache in the read path (src/sst/block-cache.ts): flushes warm tier 2, reads
// go tier 1 -> tier 2 -> disk, one memory bound over both tiers, cacheSize 0 caches nothing, and
// deleted files leave both tiers. Data block reads are caught by a main-thread file system that
// fails them with EIO (src/common/fs.ts installFileSystem); seeded (STEMEDB_TIERS_SEED).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { StemeDB } from '../dist/index.js';
import { installFileSystem, nodeFileSystem, type FileSystem } from '../dist/common/fs.js';
import { kvDir, tableNumberOf } from '../dist/common/files.js';
import { SBC_CAPACITY_BYTES_MIN } from '../dist/shm/layout.js';
import { SharedBlockCache, sharedBlockCacheRegions } from '../dist/shm/shared-block-cache.js';
import { Block } from '../dist/sst/block.js';
import { BlockCache, planBlockCache, PROMOTE_ONE_IN } from '../dist/sst/block-cache.js';
import { TableReader } from '../dist/sst/table-reader.js';
import { rng, seedFromEnv, tempDir } from './helpers/tmp.js';

const root = tempDir();
let n = 0;
const fresh = () => path.join(root, `db${n++}`);
const SEED = seedFromEnv('STEMEDB_TIERS_SEED');
const BINARY = { keyEncoding: 'buffer', valueEncoding: 'buffer' } as const;

const keyOf = (i: number) => Buffer.from(`key-${String(i).padStart(8, '0')}`);

/** Distinct, seeded values of 40..199 bytes: a mixed-up read would return the wrong bytes. */
function makeValues(seed: number, count: number): Buffer[] {
  const random = rng(seed);
  return Array.from({ length: count }, (_, i) => {
    const v = Buffer.alloc(40 + Math.floor(random() * 160));
    v.write(`v${i}:`);
    for (let b = 12; b < v.length; b++) v[b] = Math.floor(random() * 256);
    return v;
  });
}

async function fill(db: StemeDB<any, any>, values: Buffer[]): Promise<void> {
  for (let b = 0; b < values.length; b += 500) {
    const ops = [];
    for (let i = b; i < Math.min(values.length, b + 500); i++) ops.push({ type: 'put' as const, key: keyOf(i), value: values[i] });
    await db.batch(ops, BINARY as any);
  }
  await db.flush();
}

const stats = (db: StemeDB<any, any>) => db.stats() as Record<string, any>;

/** Data block offsets of every SST of a database, by path (read before faults are installed). */
function dataBlockOffsets(location: string): Map<string, Set<number>> {
  const out = new Map<string, Set<number>>();
  for (const name of fs.readdirSync(kvDir(location))) {
    const number = tableNumberOf(name);
    if (number === undefined) continue;
    const file = path.join(kvDir(location), name);
    const reader = TableReader.openSync(file, number);
    out.set(file, new Set(reader.dataBlockHandles().map((h) => h.offset)));
    reader.close();
  }
  return out;
}

/**
 * Runs body with a main-thread file system on which reading any data block of `blocks` fails
 * with EIO (opening a table, which reads its footer, index and filter, still works). Returns
 * how many data block reads were attempted.
 */
async function withDataBlockReadsFailing(blocks: Map<string, Set<number>>, body: () => Promise<void>): Promise<number> {
  const paths = new Map<number, string>();
  let attempts = 0;
  const check = (fd: number, position: number) => {
    if (!blocks.get(paths.get(fd) ?? '')?.has(position)) return;
    attempts++;
    throw Object.assign(new Error('EIO: injected data block read fault'), { code: 'EIO' });
  };
  const failing: FileSystem = {
    ...nodeFileSystem,
    openSync: (file, flags) => { const fd = nodeFileSystem.openSync(file, flags); paths.set(fd, file); return fd; },
    readSync: (fd, buf, off, len, pos) => { check(fd, pos); return nodeFileSystem.readSync(fd, buf, off, len, pos); },
    read: async (fd, buf, off, len, pos) => { check(fd, pos); return nodeFileSystem.read(fd, buf, off, len, pos); },
  };
  installFileSystem({ kind: 'node' }, failing);
  try {
    await body();
  } finally {
    installFileSystem({ kind: 'node' });
  }
  return attempts;
}

async function eventually(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('planBlockCache', () => {
  it('splits cacheSize into tier 1 and a tier-2 buffer that together never exceed it', () => {
    for (const blockSize of [256, 4096, 65536, 4 * 1024 * 1024]) {
      for (const cacheSize of [0, 1, 4096, 65536, 100_000, 200_000, 1 << 20, 8 << 20, 8_000_001, 1 << 30, 3 * 2 ** 30]) {
        const plan = planBlockCache(cacheSize, blockSize);
        expect(plan.localBytes + plan.sharedBufferBytes + plan.scratchBytes).toBeLessThanOrEqual(cacheSize);
        if (plan.sharedCapacityBytes === 0) {
          expect(plan).toEqual({ localBytes: cacheSize, sharedCapacityBytes: 0, sharedBufferBytes: 0, copyPoolBytes: 0, scratchBytes: 0 });
          continue;
        }
        expect(plan.sharedCapacityBytes).toBeGreaterThanOrEqual(SBC_CAPACITY_BYTES_MIN);
        expect(plan.sharedBufferBytes).toBe(sharedBlockCacheRegions(plan.sharedCapacityBytes).totalBytes);
        // Tier 1 gets at least an eighth, tier 2 the rest (up to its 1 GiB limit).
        expect(plan.localBytes).toBeGreaterThanOrEqual(Math.floor(cacheSize / 8));
        if (cacheSize <= 1 << 30) expect(plan.sharedBufferBytes).toBeGreaterThan(cacheSize / 2);
        // A block of blockSize must fit tier 2 (it refuses blocks above an eighth of its arena).
        expect(plan.sharedCapacityBytes / 8).toBeGreaterThan(blockSize);
      }
    }
    expect(planBlockCache(8 << 20, 4096).sharedCapacityBytes).toBeGreaterThan(6.5 * 2 ** 20);
    expect(planBlockCache(0, 4096)).toMatchObject({ localBytes: 0, sharedCapacityBytes: 0 });
  });

  it('charges tier 1 by the memory its blocks keep alive: copies sharing a pool are charged one pool', () => {
    const shared = SharedBlockCache.create(256 * 1024, { copyPoolBytes: 16 * 1024 });
    const cache = new BlockCache(64 * 1024, shared);
    const contents = new Uint8Array(4000);
    contents[4000 - 4] = 1; // one restart at 0
    for (let i = 0; i < 4; i++) cache.admit(1, i * 4096, new Block('t', i * 4096, contents.slice()));
    expect(cache.stats).toMatchObject({ localBytes: 16_000, localBlocks: 4, sharedBytes: 16_000, sharedBlocks: 4, misses: 0 });
    cache.evictFile(1);
    expect(cache.stats).toMatchObject({ localBytes: 0, sharedBytes: 0, blocks: 0 });
    for (let i = 0; i < 4; i++) shared.insert(2, i * 4096, contents);
    for (let i = 0; i < 4; i++) expect(cache.lookup('t', 2, i * 4096)!.data).toEqual(contents);
    // Four 4000-byte copies carved from one 16 KiB pool: the pool is what they keep alive.
    expect(cache.stats).toMatchObject({ localBytes: 16 * 1024, localBlocks: 4, sharedHits: 4, localHits: 0, misses: 0 });
    expect(cache.lookup('t', 2, 0)).toBeDefined();
    expect(cache.lookup('t', 2, 99)).toBeUndefined();
    expect(cache.stats).toMatchObject({ localHits: 1, sharedHits: 4, hits: 5, misses: 1 });
  });

  it('transient tier-2 hits use the scratch buffer and are promoted to tier 1 about one time in PROMOTE_ONE_IN', () => {
    const shared = SharedBlockCache.create(1024 * 1024);
    const cache = new BlockCache(1024 * 1024, shared, 8192);
    const blocks = Array.from({ length: 400 }, (_, i) => {
      const contents = new Uint8Array(512);
      contents.fill(i & 0xff, 0, 504);
      contents[508] = 1; // one restart at 0
      shared.insert(3, i * 512, contents);
      return contents;
    });
    let previous: Block | undefined;
    for (let i = 0; i < blocks.length; i++) {
      const block = cache.lookup('t', 3, i * 512, true)!;
      expect(block.data).toEqual(blocks[i]);
      if (previous !== undefined && cache.stats.localBlocks === 0) expect(previous.data.buffer).toBe(block.data.buffer); // the scratch
      previous = block;
    }
    const promoted = cache.stats.localBlocks;
    expect(cache.stats).toMatchObject({ sharedHits: 400, localHits: 0, misses: 0 });
    expect(promoted).toBeGreaterThan(400 / PROMOTE_ONE_IN / 3);
    expect(promoted).toBeLessThan((400 / PROMOTE_ONE_IN) * 3);
    // A block read again and again is promoted soon, and then served by tier 1.
    let tries = 0;
    while (cache.stats.localHits === 0) {
      expect(cache.lookup('t', 3, 0, true)!.data).toEqual(blocks[0]);
      expect(++tries).toBeLessThan(200);
    }
    // Non-transient lookups (iterators) always promote.
    const another = new BlockCache(1024 * 1024, shared, 8192);
    expect(another.lookup('t', 3, 512)!.data).toEqual(blocks[1]);
    expect(another.stats.localBlocks).toBe(1);
  });
});

describe('two-tier block cache in the read path', () => {
  it('after a flush, reads of the flushed data hit tier 2 and never read a data block from disk', async () => {
    const values = makeValues(SEED, 3000);
    for (const prepopulateBlockCache of [true, false]) {
      const location = fresh();
      const db = new StemeDB(location, { ...BINARY, writeBufferSize: 64 * 1024, autoCompaction: false, prepopulateBlockCache });
      await db.open();
      await fill(db, values);
      expect(stats(db).sstFileCount).toBeGreaterThan(2);
      const blocks = dataBlockOffsets(location);
      const attempts = await withDataBlockReadsFailing(blocks, async () => {
        if (!prepopulateBlockCache) {
          // The control: without warming, the first read of each block goes to disk, which fails here.
          let code: unknown;
          try { db.getSync(keyOf(0)); } catch (e) { code = (e as { code?: string }).code; }
          expect(code).toBe('LEVEL_IO_ERROR');
          return;
        }
        for (let i = 0; i < values.length; i += 2) expect(db.getSync(keyOf(i))).toEqual(values[i]);
        for (let i = 1; i < values.length; i += 2) expect(await db.get(keyOf(i))).toEqual(values[i]);
        expect(await db.keys().all()).toHaveLength(values.length);
      });
      const s = stats(db);
      if (prepopulateBlockCache) {
        expect(attempts).toBe(0);
        expect(s.blockCacheMisses).toBe(0);
        expect(s.blockCacheSharedHits).toBeGreaterThanOrEqual([...blocks.values()].reduce((k, b) => k + b.size, 0));
        expect(s.blockCacheHits).toBe(s.blockCacheSharedHits + s.blockCacheLocalHits);
      } else {
        expect(attempts).toBe(1);
        expect(s.blockCacheSharedBytes).toBe(0);
      }
      await db.close();
    }
  });

  it('values read through tier 2 with a small tier 1 equal the written values', async () => {
    const values = makeValues(SEED + 1, 2500);
    const cacheSize = 512 * 1024;
    const db = new StemeDB(fresh(), { ...BINARY, cacheSize, writeBufferSize: 64 * 1024, autoCompaction: false });
    await db.open();
    await fill(db, values);
    const before = stats(db);
    expect(before.blockCacheLocalCapacityBytes).toBeGreaterThanOrEqual(cacheSize / 8);
    expect(before.blockCacheLocalCapacityBytes).toBeLessThan(cacheSize / 8 + 1024);
    expect(before.blockCacheSharedBytes).toBeGreaterThan(before.blockCacheLocalCapacityBytes);
    const random = rng(SEED + 2);
    for (let round = 0; round < 4; round++) {
      for (let k = 0; k < values.length; k++) {
        const i = Math.floor(random() * values.length);
        const got = k % 3 === 0 ? await db.get(keyOf(i)) : db.getSync(keyOf(i));
        expect(got).toEqual(values[i]);
      }
    }
    const entries = await db.iterator().all();
    expect(entries.map(([, v]) => v)).toEqual(values);
    const s = stats(db);
    // Tier 1 holds 16 blocks of about 4 KiB; the rest of the ~150 blocks are served by tier 2.
    expect(s.blockCacheSharedHits).toBeGreaterThan(2 * values.length);
    expect(s.blockCacheLocalHits).toBeGreaterThan(0);
    expect(s.blockCacheMisses).toBe(0);
    await db.close();
  });

  it('blockCacheBytes never exceeds cacheSize, under point reads, async reads and scans', async () => {
    const values = makeValues(SEED + 3, 20_000);
    const cacheSize = 256 * 1024;
    const db = new StemeDB(fresh(), { ...BINARY, cacheSize, writeBufferSize: 256 * 1024, autoCompaction: false });
    await db.open();
    await fill(db, values);
    const random = rng(SEED + 4);
    let checks = 0;
    const check = () => {
      const s = stats(db);
      expect(s.blockCacheCapacityBytes).toBeLessThanOrEqual(cacheSize);
      expect(s.blockCacheBytes).toBeLessThanOrEqual(cacheSize);
      expect(s.blockCacheBytes).toBe(s.blockCacheLocalBytes + s.blockCacheSharedBytes);
      expect(s.blockCacheLocalBytes).toBeLessThanOrEqual(s.blockCacheLocalCapacityBytes);
      expect(s.blockCacheSharedBytes).toBeLessThanOrEqual(s.blockCacheSharedCapacityBytes);
      checks++;
    };
    check();
    for (let k = 0; k < 6000; k++) {
      const i = Math.floor(random() * values.length);
      expect(k % 4 === 0 ? await db.get(keyOf(i)) : db.getSync(keyOf(i))).toEqual(values[i]);
      if (k % 250 === 0) check();
      if (k % 2000 === 0) {
        let seen = 0;
        for await (const [, v] of db.iterator({ gte: keyOf(i), limit: 3000 })) expect(v).toEqual(values[i + seen++]);
        check();
      }
    }
    const s = stats(db);
    expect(s.blockCacheMisses).toBeGreaterThan(0); // the data is ten times the cache: it was full
    expect(s.blockCacheSharedBytes).toBeGreaterThan(s.blockCacheSharedCapacityBytes / 2);
    expect(checks).toBeGreaterThan(20);
    await db.close();
  });

  it('cacheSize 0 reads correctly and caches nothing', async () => {
    const values = makeValues(SEED + 5, 2000);
    const db = new StemeDB(fresh(), { ...BINARY, cacheSize: 0, writeBufferSize: 64 * 1024, autoCompaction: false });
    await db.open();
    await fill(db, values);
    for (let i = 0; i < values.length; i += 3) expect(db.getSync(keyOf(i))).toEqual(values[i]);
    for (let i = 1; i < values.length; i += 3) expect(await db.get(keyOf(i))).toEqual(values[i]);
    expect((await db.iterator().all()).map(([, v]) => v)).toEqual(values);
    const s = stats(db);
    expect(s).toMatchObject({
      blockCacheCapacityBytes: 0, blockCacheBytes: 0, blockCacheHits: 0,
      blockCacheSharedCapacityBytes: 0, blockCacheSharedBytes: 0, blockCacheLocalBytes: 0,
    });
    expect(s.blockCacheMisses).toBeGreaterThan(Math.ceil((2 * values.length) / 3) - 1); // every point read went to disk
    await db.close();
  });

  it('files deleted by compaction leave both tiers, and compaction outputs are not warmed', async () => {
    const values = makeValues(SEED + 6, 4000);
    const db = new StemeDB(fresh(), { ...BINARY, writeBufferSize: 64 * 1024, autoCompaction: false });
    await db.open();
    await fill(db, values);
    for (let i = 0; i < values.length; i += 7) expect(db.getSync(keyOf(i))).toEqual(values[i]);
    const before = stats(db);
    expect(before.blockCacheSharedBytes).toBeGreaterThan(0);
    expect(before.blockCacheLocalBytes).toBeGreaterThan(0);
    const flushed = before.sstFileCount;
    await db.compactRange();
    await eventually(() => stats(db).obsoleteFilesDeleted >= flushed, 'the flushed files to be deleted');
    // Nothing was read since: anything left in either tier would belong to a deleted file or
    // to a compaction output that warmed the cache.
    await eventually(() => stats(db).blockCacheSharedBytes === 0, 'tier 2 to drop the deleted files');
    const after = stats(db);
    expect(after.blockCacheLocalBytes).toBe(0);
    expect(after.blockCacheBytes).toBe(0);
    const missesBefore = after.blockCacheMisses;
    for (let i = 0; i < values.length; i += 7) expect(db.getSync(keyOf(i))).toEqual(values[i]);
    expect(stats(db).blockCacheMisses).toBeGreaterThan(missesBefore);
    await db.close();
  });
});
