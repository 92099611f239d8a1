// LSM maintenance: compaction keeps disk bounded, reclaims deletes, never deletes a file a
// reader holds, and stalls writers (rather than growing memory) when it falls behind.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { StemeDB } from '../dist/index.js';
import { rng, seedFromEnv, tempDir } from './helpers/tmp.js';

const root = tempDir();
let n = 0;
const fresh = () => path.join(root, `db${n++}`);

function diskBytes(location: string): number {
  let total = 0;
  for (const dir of ['kv', 'wal']) {
    for (const f of fs.readdirSync(path.join(location, dir))) {
      try { total += fs.statSync(path.join(location, dir, f)).size; } catch { /* deleted meanwhile */ }
    }
  }
  return total;
}

const KEYS = Number(process.env.STEMEDB_OVERWRITE_KEYS ?? 200_000);

describe('compaction', () => {
  it(`${KEYS} random puts then ${KEYS} overwrites: newest values, bounded disk, reclaimed by compactRange; deletes fall back near zero`, async () => {
    const seed = seedFromEnv('STEMEDB_COMPACTION_SEED');
    const random = rng(seed);
    const location = fresh();
    const db = new StemeDB(location, { keyEncoding: 'buffer', valueEncoding: 'buffer' } as any);
    await db.open();
    const order = Array.from({ length: KEYS }, (_, i) => i);
    for (let i = KEYS - 1; i > 0; i--) { const j = Math.floor(random() * (i + 1)); [order[i], order[j]] = [order[j], order[i]]; }
    const key = (i: number) => Buffer.from(String(i).padStart(16, '0'));
    const value = (i: number, round: number) => {
      const half = Buffer.alloc(50);
      half.writeUInt32LE(i, 0);
      half.writeUInt32LE(round, 4);
      for (let b = 8; b < 50; b++) half[b] = (i * 31 + b * 7 + round) & 0xff;
      return Buffer.concat([half, half]);
    };
    const liveBytes = KEYS * (16 + 100);
    let maxDisk = 0;
    for (const round of [1, 2]) {
      for (let b = 0; b < KEYS; b += 1000) {
        const ops = [];
        for (let i = b; i < Math.min(KEYS, b + 1000); i++) ops.push({ type: 'put' as const, key: key(order[i]), value: value(order[i], round) });
        await db.batch(ops);
        if (b % 20_000 === 0) maxDisk = Math.max(maxDisk, diskBytes(location));
      }
    }
    const stats: any = db.stats();
    console.log(`overwrite: writeAmplification=${stats.writeAmplification.toFixed(2)} compactions=${stats.compactions} sstFiles=${stats.sstFileCount} maxDisk=${maxDisk} live=${liveBytes}`);
    expect(stats.compactions).toBeGreaterThan(0);
    expect(maxDisk).toBeLessThanOrEqual(2 * liveBytes);
    expect(stats.sstFileCount).toBeLessThan(100);
    for (let i = 0; i < KEYS; i += 97) expect(db.getSync(key(i))).toEqual(value(i, 2));

    await db.compactRange();
    // Files replaced by the compaction are deleted once no reader holds them (deletion is asynchronous).
    await new Promise((r) => setTimeout(r, 200));
    const afterCompact = diskBytes(location);
    console.log(`after compactRange: disk=${afterCompact} (${(afterCompact / liveBytes).toFixed(2)}x live)`);
    expect(afterCompact).toBeLessThanOrEqual(1.2 * liveBytes);
    const all = await db.iterator().all();
    expect(all.length).toBe(KEYS);
    // Every key reads its newest value (compared in a loop: one expect per key would be slow).
    let stale = 0;
    for (const [k, v] of all) if (!v.equals(value(Number(k.toString()), 2))) stale++;
    expect(stale).toBe(0);

    for (let b = 0; b < KEYS; b += 1000) {
      await db.batch(Array.from({ length: Math.min(1000, KEYS - b) }, (_, j) => ({ type: 'del' as const, key: key(b + j) })));
    }
    await db.compactRange();
    await new Promise((r) => setTimeout(r, 200));
    const afterDelete = diskBytes(location);
    console.log(`after deleting everything and compactRange: disk=${afterDelete}`);
    expect(afterDelete).toBeLessThan(64 * 1024);
    expect(await db.keys().all()).toEqual([]);
    await db.close();
  }, 600_000);

  it('iterators and snapshots taken during compactions see exactly their snapshot, and no file they hold is deleted', async () => {
    const location = fresh();
    const db = new StemeDB(location, { writeBufferSize: 64 * 1024, targetFileBytes: 64 * 1024, levelBaseBytes: 256 * 1024 });
    await db.open();
    const KEYS_HERE = 3000;
    const key = (i: number) => `k${String(i).padStart(6, '0')}`;
    const writeGeneration = async (g: number) => {
      for (let b = 0; b < KEYS_HERE; b += 500) {
        await db.batch(Array.from({ length: 500 }, (_, j) => ({ type: 'put' as const, key: key(b + j), value: `g${g}-${b + j}-${'x'.repeat(40)}` })));
      }
    };
    await writeGeneration(0);
    const readers: { generation: number; it: any; seen: number; snapshot?: any }[] = [];
    for (let g = 1; g <= 8; g++) {
      // An iterator and an explicit snapshot that must see generation g - 1 however much compaction follows.
      const snapshot = db.snapshot();
      readers.push({ generation: g - 1, it: db.iterator(), seen: 0 });
      readers.push({ generation: g - 1, it: db.iterator({ snapshot }), seen: 0, snapshot });
      await writeGeneration(g);
      // Each reader advances a little between generations, so it reads old files across compactions.
      for (const r of readers) {
        const batch = await r.it.nextv(97);
        for (const [k, v] of batch) {
          expect(k).toBe(key(r.seen));
          expect(v).toBe(`g${r.generation}-${r.seen}-${'x'.repeat(40)}`);
          r.seen++;
        }
      }
    }
    const mid: any = db.stats();
    expect(mid.compactions).toBeGreaterThan(0);
    for (const r of readers) {
      for (let batch = await r.it.nextv(500); batch.length; batch = await r.it.nextv(500)) {
        for (const [k, v] of batch) {
          expect(k).toBe(key(r.seen));
          expect(v).toBe(`g${r.generation}-${r.seen}-${'x'.repeat(40)}`);
          r.seen++;
        }
      }
      expect(r.seen).toBe(KEYS_HERE);
      if (r.snapshot) expect(await db.get(key(5), { snapshot: r.snapshot })).toBe(`g${r.generation}-5-${'x'.repeat(40)}`);
      await r.it.close();
      if (r.snapshot) await r.snapshot.close();
    }
    expect(await db.get(key(5))).toBe(`g8-5-${'x'.repeat(40)}`);
    await new Promise((r) => setTimeout(r, 200));
    const end: any = db.stats();
    expect(end.obsoleteFilesDeleted).toBeGreaterThan(0);
    expect(end.liveVersions).toBe(1);
    // Nothing on disk but the current version's files once every reader let go. Background
    // compactions may still be finishing, so wait (bounded) for disk and Version to agree.
    const sstsOnDisk = () => fs.readdirSync(path.join(location, 'kv')).filter((f) => f.endsWith('.sst')).length;
    for (let i = 0; i < 100 && sstsOnDisk() !== (db.stats() as any).sstFileCount; i++) await new Promise((r) => setTimeout(r, 50));
    expect(sstsOnDisk()).toBe((db.stats() as any).sstFileCount);
    await db.close();
  }, 300_000);

  it('a slowed compaction slows writers, then holds them, then lets them resume; memory stays bounded', async () => {
    const location = fresh();
    const writeBufferSize = 64 * 1024;
    const db = new StemeDB(location, {
      writeBufferSize, immutableMemtablesMax: 2, compactionThrottleMs: 150,
      level0CompactionTrigger: 2, level0SlowdownTrigger: 3, level0StopTrigger: 5,
    });
    await db.open();
    let maxMemtableBytes = 0;
    let maxL0 = 0;
    const value = 'v'.repeat(1000);
    const started = performance.now();
    // Batches of ~100 KB: the 1 ms slowdown per write cannot hold back this much data, so
    // level 0 reaches its stop trigger and writers must wait for compaction.
    for (let b = 0; b < 80; b++) {
      const writes = [];
      for (let w = 0; w < 4; w++) {
        writes.push(db.batch(Array.from({ length: 25 }, (_, i) => ({ type: 'put' as const, key: `key-${b}-${w * 25 + i}`, value }))));
      }
      await Promise.all(writes);
      const s: any = db.stats();
      maxMemtableBytes = Math.max(maxMemtableBytes, s.memtableActiveBytes + s.memtableImmutableBytes);
      maxL0 = Math.max(maxL0, s.levels[0].fileCount);
    }
    const s: any = db.stats();
    console.log(`stalls: slowdowns=${s.slowdownCount} stops=${s.stallCount} stallMillis=${s.stallMillis} maxL0=${maxL0} maxMemtableBytes=${maxMemtableBytes} elapsedMs=${Math.round(performance.now() - started)}`);
    expect(s.slowdownCount).toBeGreaterThan(0);
    expect(s.stallCount).toBeGreaterThan(0);
    expect(s.stallMillis).toBeGreaterThan(0);
    expect(maxL0).toBeLessThanOrEqual(5 + 1);
    expect(maxMemtableBytes).toBeLessThanOrEqual(writeBufferSize * 3 + 64 * 1024);
    expect(await db.get('key-79-99')).toBe(value);
    expect(await db.get('key-0-0')).toBe(value);
    await db.close();
  }, 300_000);

  it('pending compaction bytes past the hard limit hold writers until compaction catches up', async () => {
    const db = new StemeDB(fresh(), {
      writeBufferSize: 64 * 1024, level0CompactionTrigger: 2, compactionThrottleMs: 50,
      pendingCompactionBytesSoft: 1, pendingCompactionBytesHard: 1,
    });
    await db.open();
    const value = 'p'.repeat(1000);
    let sawPending = 0;
    for (let b = 0; b < 30; b++) {
      await db.batch(Array.from({ length: 100 }, (_, i) => ({ type: 'put' as const, key: `k-${b}-${i}`, value })));
      sawPending = Math.max(sawPending, (db.stats() as any).pendingCompactionBytes);
    }
    const s: any = db.stats();
    console.log(`pending-bytes stall: stops=${s.stallCount} slowdowns=${s.slowdownCount} maxPending=${sawPending}`);
    expect(s.stallCount).toBeGreaterThan(0);
    expect(s.compactions).toBeGreaterThan(0);
    expect(await db.get('k-29-99')).toBe(value);
    expect(await db.get('k-0-0')).toBe(value);
    await db.close();
  }, 120_000);
});
