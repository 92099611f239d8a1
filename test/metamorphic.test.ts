// Metamorphic test: one seeded random sequence of put, del, batch, iterate, snapshot, flush,
// compactRange and reopen runs under several option sets, and every read under every set must
// equal an in-memory model. Short here; `npm run test:metamorphic` runs it long
// (STEMEDB_METAMORPHIC_OPS, STEMEDB_METAMORPHIC_SEED).
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { StemeDB } from '../dist/index.js';
import { rng, seedFromEnv, tempDir } from './helpers/tmp.js';

const OPS = Number(process.env.STEMEDB_METAMORPHIC_OPS ?? 3000);
const root = tempDir();

const optionSets: Record<string, Record<string, unknown>> = {
  'tiny blocks, 64 KiB memtable, no compression, 2 threads': { blockSize: 256, writeBufferSize: 64 * 1024, compression: false, maintenanceThreads: 2, targetFileBytes: 32 * 1024, levelBaseBytes: 128 * 1024 },
  'default blocks, 128 KiB memtable, lz4, 1 thread': { blockSize: 4096, writeBufferSize: 128 * 1024, compression: true, maintenanceThreads: 1, level0CompactionTrigger: 2 },
  'large blocks, 1 MiB memtable, no auto compaction, 3 threads': { blockSize: 16384, writeBufferSize: 1024 * 1024, autoCompaction: false, maintenanceThreads: 3, cacheSize: 0 },
};

type Model = Map<string, string>;

function expectedRange(model: Model, o: { gte?: string; lt?: string; reverse: boolean; limit: number }): [string, string][] {
  let keys = [...model.keys()].sort().filter((k) => (o.gte === undefined || k >= o.gte) && (o.lt === undefined || k < o.lt));
  if (o.reverse) keys = keys.reverse();
  if (o.limit >= 0) keys = keys.slice(0, o.limit);
  return keys.map((k) => [k, model.get(k)!]);
}

async function runSequence(seed: number, name: string, options: Record<string, unknown>): Promise<string[]> {
  const random = rng(seed);
  const pick = (n: number) => Math.floor(random() * n);
  const key = () => `key-${String(pick(2000)).padStart(5, '0')}`;
  const location = path.join(root, name.replace(/\W+/g, '-'));
  const model: Model = new Map();
  const log: string[] = [];
  let db = new StemeDB(location, options);
  await db.open();
  const snapshots: { snapshot: any; model: Model }[] = [];
  for (let step = 0; step < OPS; step++) {
    const r = random();
    const where = `${name} seed=${seed} step=${step}`;
    if (r < 0.35) {
      const k = key(), v = `v${step}-${'x'.repeat(pick(200))}`;
      await db.put(k, v);
      model.set(k, v);
    } else if (r < 0.45) {
      const k = key();
      await db.del(k);
      model.delete(k);
    } else if (r < 0.6) {
      const ops: any[] = [];
      for (let i = pick(50); i >= 0; i--) {
        const k = key();
        if (random() < 0.2) { ops.push({ type: 'del', key: k }); model.delete(k); }
        else { const v = `b${step}-${i}`; ops.push({ type: 'put', key: k, value: v }); model.set(k, v); }
      }
      await db.batch(ops);
    } else if (r < 0.75) {
      const k = key();
      expect(await db.get(k), where).toBe(model.get(k));
      expect(db.getSync(k), where).toBe(model.get(k));
    } else if (r < 0.85) {
      const a = key(), b = key();
      const o = { gte: a < b ? a : b, lt: a < b ? b : a, reverse: random() < 0.5, limit: random() < 0.5 ? pick(100) : -1 };
      const got = await db.iterator(o).all();
      const want = expectedRange(model, o);
      expect(got, where).toEqual(want);
      log.push(`${step}:${got.length}`);
    } else if (r < 0.9) {
      if (snapshots.length < 4) snapshots.push({ snapshot: db.snapshot(), model: new Map(model) });
      else {
        const s = snapshots.shift()!;
        const k = key();
        expect(await db.get(k, { snapshot: s.snapshot }), where).toBe(s.model.get(k));
        const got = await db.iterator({ snapshot: s.snapshot, limit: 50 }).all();
        expect(got, where).toEqual(expectedRange(s.model, { reverse: false, limit: 50 }));
        await s.snapshot.close();
      }
    } else if (r < 0.95) {
      await db.flush();
    } else if (r < 0.98) {
      await db.compactRange();
    } else {
      for (const s of snapshots.splice(0)) await s.snapshot.close();
      await db.close();
      db = new StemeDB(location, options);
      await db.open();
    }
  }
  const all = await db.iterator().all();
  expect(all, `${name} seed=${seed} final scan`).toEqual(expectedRange(model, { reverse: false, limit: -1 }));
  for (const s of snapshots) await s.snapshot.close();
  await db.close();
  log.push(`final:${all.length}`);
  return log;
}

describe('metamorphic', () => {
  it(`${OPS} seeded random operations give the model's results under every option set`, async () => {
    const seed = seedFromEnv('STEMEDB_METAMORPHIC_SEED');
    const logs: string[][] = [];
    for (const [name, options] of Object.entries(optionSets)) logs.push(await runSequence(seed, name, options));
    // Identical observable results across option sets.
    for (const log of logs.slice(1)) expect(log).toEqual(logs[0]);
  }, 600_000);
});
