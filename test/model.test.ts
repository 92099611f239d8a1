// Metamorphic model test: 1,000,000 random keys go through put, batch and del, and every read
// path (get, getSync, getMany, forward and reverse range iterators with limits) must agree
// with an in-memory model, before and after close and reopen. Seeded; the seed is printed.
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { StemeDB } from '../dist/index.js';
import { rng, seedFromEnv, tempDir } from './helpers/tmp.js';

const KEYS = Number(process.env.STEMEDB_MODEL_KEYS ?? 1_000_000);

describe('model', () => {
  it('1,000,000 random keys agree with an in-memory model through every read path, across reopen', async () => {
    const seed = seedFromEnv('STEMEDB_MODEL_SEED');
    const random = rng(seed);
    const location = path.join(tempDir(), 'db');
    const model = new Map<string, string>();
    const keyOf = (i: number) => `key-${String(i).padStart(10, '0')}`;
    const randomKey = () => keyOf(Math.floor(random() * KEYS * 1.25));
    const valueOf = (k: string, round: number) => `${k}:${round}:${Math.floor(random() * 1e9)}`;

    let db = new StemeDB(location);
    await db.open();

    // Batches: the bulk of the keys.
    for (let b = 0; b < KEYS / 1000; b++) {
      const ops: any[] = [];
      for (let i = 0; i < 1000; i++) {
        const key = randomKey();
        if (random() < 0.05) { ops.push({ type: 'del', key }); model.delete(key); }
        else { const value = valueOf(key, b); ops.push({ type: 'put', key, value }); model.set(key, value); }
      }
      await db.batch(ops);
    }
    // Single puts and dels, 64 in flight.
    let inflight: Promise<void>[] = [];
    for (let i = 0; i < 20_000; i++) {
      const key = randomKey();
      if (random() < 0.3) { inflight.push(db.del(key)); model.delete(key); }
      else { const value = valueOf(key, -1); inflight.push(db.put(key, value)); model.set(key, value); }
      if (inflight.length === 64) { await Promise.all(inflight); inflight = []; }
    }
    await Promise.all(inflight);
    expect((db.stats() as any).sstFileCount).toBeGreaterThan(0);

    const sorted = [...model.keys()].sort();
    const verify = async (label: string) => {
      // Full forward scan.
      const all = await db.iterator().all();
      expect(all.length, label).toBe(sorted.length);
      for (let i = 0; i < all.length; i++) {
        if (all[i][0] !== sorted[i] || all[i][1] !== model.get(sorted[i])) {
          throw new Error(`${label}: scan mismatch at ${i}: got ${all[i][0]}=${all[i][1]}, want ${sorted[i]}=${model.get(sorted[i])}`);
        }
      }
      // Random ranges, both directions, with limits.
      for (let r = 0; r < 40; r++) {
        const a = randomKey(), b = randomKey();
        const [lo, hi] = a < b ? [a, b] : [b, a];
        const reverse = r % 2 === 1;
        const limit = r % 4 < 2 ? 1 + Math.floor(random() * 500) : -1;
        const range: any = r % 3 === 0 ? { gt: lo, lte: hi } : { gte: lo, lt: hi };
        let want = sorted.filter((k) => (range.gt !== undefined ? k > range.gt : k >= range.gte) && (range.lte !== undefined ? k <= range.lte : k < range.lt));
        if (reverse) want = want.reverse();
        if (limit >= 0) want = want.slice(0, limit);
        const got = await db.keys({ ...range, reverse, limit }).all();
        expect(got, `${label} range ${JSON.stringify(range)} reverse=${reverse} limit=${limit}`).toEqual(want);
      }
      // Point reads, present and absent keys.
      for (let i = 0; i < 20_000; i++) {
        const key = randomKey();
        const want = model.get(key);
        expect(db.getSync(key), `${label} getSync ${key}`).toBe(want);
        if (i % 4 === 0) expect(await db.get(key), `${label} get ${key}`).toBe(want);
      }
      const many = Array.from({ length: 1000 }, randomKey);
      expect(await db.getMany(many)).toEqual(many.map((k) => model.get(k)));
    };

    await verify('before reopen');
    await db.close();
    db = new StemeDB(location);
    await db.open();
    await verify('after reopen');
    await db.close();
  }, 600_000);
});
