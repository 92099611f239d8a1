// Data/index blocks and the block cache, tested directly. Seeded (SST_TEST_SEED); seed printed.

import { describe, expect, test } from 'vitest';
import { CorruptionError } from '../dist/common/errors.js';
import { compareInternalKeys, makeInternalKey } from '../dist/common/keys.js';
import { Block, compareInternalRange } from '../dist/sst/block.js';
import { BlockBuilder } from '../dist/sst/block-builder.js';
import { BlockCache } from '../dist/sst/block-cache.js';
import { rng } from './helpers/random.mjs';

const SEED = Number(process.env.SST_TEST_SEED ?? Date.now() % 1_000_000_007);
console.log(`sst-block.test.ts seed=${SEED}`);


function sortedKeys(random: () => number, count: number): { key: Uint8Array; value: Uint8Array }[] {
  const seen = new Set<string>();
  const out: { key: Uint8Array; value: Uint8Array }[] = [];
  while (out.length < count) {
    const user = Buffer.from(Array.from({ length: Math.floor(random() * 40) }, () => 97 + Math.floor(random() * 3)));
    const key = makeInternalKey(user, Math.floor(random() * 2 ** 40), Math.floor(random() * 2));
    const id = Buffer.from(key).toString('hex');
    if (seen.has(id)) continue;
    seen.add(id);
    out.push({ key, value: Buffer.from(Array.from({ length: Math.floor(random() * 300) }, () => Math.floor(random() * 256))) });
  }
  return out.sort((a, b) => compareInternalKeys(a.key, b.key));
}

function buildBlock(entries: { key: Uint8Array; value: Uint8Array }[], restartInterval: number): Uint8Array {
  const builder = new BlockBuilder(restartInterval);
  for (const e of entries) builder.add(e.key, e.value);
  return builder.finish().slice();
}

describe('block', () => {
  test('compareInternalRange matches compareInternalKeys', () => {
    const random = rng(SEED);
    const keys = sortedKeys(random, 500).map((e) => e.key);
    for (let i = 0; i < 5000; i++) {
      const a = keys[Math.floor(random() * keys.length)];
      const b = keys[Math.floor(random() * keys.length)];
      expect(Math.sign(compareInternalRange(a, 0, a.length, b, 0, b.length))).toBe(Math.sign(compareInternalKeys(a, b)));
    }
    // Sequences above 2^32 and equal user keys.
    const hi = makeInternalKey(Buffer.from('k'), 2 ** 50, 1);
    const lo = makeInternalKey(Buffer.from('k'), 2 ** 32 + 5, 1);
    expect(compareInternalRange(hi, 0, hi.length, lo, 0, lo.length)).toBeLessThan(0);
  });

  for (const restartInterval of [1, 2, 16, 1000]) {
    test(`iterate, seek and prev (restart interval ${restartInterval})`, () => {
      const random = rng(SEED + restartInterval);
      const entries = sortedKeys(random, 700);
      const block = new Block('mem', 0, buildBlock(entries, restartInterval));
      expect(block.restartCount).toBe(Math.ceil(entries.length / restartInterval));
      const it = block.iterator();
      let i = 0;
      for (it.seekToFirst(); it.valid(); it.next(), i++) {
        expect(Buffer.from(it.key()).equals(Buffer.from(entries[i].key))).toBe(true);
        expect(Buffer.from(it.value()).equals(Buffer.from(entries[i].value))).toBe(true);
      }
      expect(i).toBe(entries.length);
      i = entries.length - 1;
      for (it.seekToLast(); it.valid(); it.prev(), i--) expect(Buffer.from(it.key()).equals(Buffer.from(entries[i].key))).toBe(true);
      expect(i).toBe(-1);
      for (let s = 0; s < 500; s++) {
        const probe = sortedKeys(random, 1)[0].key;
        const target = random() < 0.5 ? probe : entries[Math.floor(random() * entries.length)].key;
        it.seek(target);
        const expected = entries.findIndex((e) => compareInternalKeys(e.key, target) >= 0);
        if (expected < 0) expect(it.valid()).toBe(false);
        else expect(Buffer.from(it.key()).equals(Buffer.from(entries[expected].key))).toBe(true);
      }
      // seek() with the iterator's own key() as target.
      it.seekToFirst();
      it.next();
      it.next();
      it.seek(it.key());
      expect(Buffer.from(it.key()).equals(Buffer.from(entries[2].key))).toBe(true);
    });
  }

  test('an empty block is valid and empty', () => {
    const block = new Block('mem', 0, new BlockBuilder(16).finish());
    const it = block.iterator();
    it.seekToFirst();
    expect(it.valid()).toBe(false);
    it.seekToLast();
    expect(it.valid()).toBe(false);
    it.seek(makeInternalKey(Buffer.from('x'), 1, 1));
    expect(it.valid()).toBe(false);
  });

  test('damaged block contents throw CorruptionError only: no out-of-bounds reads, no hangs', () => {
    const random = rng(SEED + 99);
    const contents = buildBlock(sortedKeys(random, 200), 8);
    let corruptions = 0;
    for (let n = 0; n < 3000; n++) {
      const damaged = contents.slice();
      const flips = 1 + Math.floor(random() * 4);
      for (let f = 0; f < flips; f++) {
        // Bias toward the restart array and entry headers, where offsets live.
        const at = random() < 0.3 ? damaged.length - 1 - Math.floor(random() * 120) : Math.floor(random() * damaged.length);
        damaged[at] = Math.floor(random() * 256);
      }
      const truncated = random() < 0.1 ? damaged.subarray(0, Math.floor(random() * damaged.length)) : damaged;
      try {
        const block = new Block('mem', 123, truncated);
        const it = block.iterator();
        let steps = 0;
        // Plain checks: expect() per step would dominate the run time.
        for (it.seekToFirst(); it.valid(); it.next()) {
          if (it.key().length < 8 || ++steps > 100_000) throw new Error(`bad key or runaway iteration at step ${steps}`);
        }
        for (it.seekToLast(); it.valid(); it.prev()) if (++steps > 200_000) throw new Error('runaway reverse iteration');
        it.seek(makeInternalKey(Buffer.from('bb'), 5, 1));
      } catch (e) {
        if (!(e instanceof CorruptionError)) throw e;
        expect(e.code).toBe('LEVEL_CORRUPTION');
        expect(e.offset).toBe(123);
        corruptions++;
      }
    }
    expect(corruptions).toBeGreaterThan(100);
    console.log(`damaged blocks: ${corruptions} of 3000 reported corruption (the rest decoded to other data, as no checksum is involved)`);
    // Hand-made garbage.
    for (const bad of [new Uint8Array(0), new Uint8Array(3), Uint8Array.of(0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff), Uint8Array.of(9, 0, 0, 0, 1, 0, 0, 0)]) {
      expect(() => new Block('mem', 7, bad)).toThrow(CorruptionError);
    }
  }, 60_000);
});

describe('block cache', () => {
  const blockOf = (bytes: number) => {
    const contents = new Uint8Array(bytes);
    contents[bytes - 4] = 1; // one restart at 0, no entries
    return new Block('mem', 0, contents);
  };

  test('LRU eviction by bytes, hits and misses', () => {
    const cache = new BlockCache(1000);
    cache.insert(1, 0, blockOf(400));
    cache.insert(1, 400, blockOf(400));
    expect(cache.get(1, 0)).toBeDefined(); // 1:0 becomes most recent
    cache.insert(2, 0, blockOf(400)); // evicts 1:400, the least recently used
    expect(cache.get(1, 400)).toBeUndefined();
    expect(cache.get(1, 0)).toBeDefined();
    expect(cache.get(2, 0)).toBeDefined();
    expect(cache.stats).toMatchObject({ bytes: 800, blocks: 2, hits: 3, misses: 1 });
    cache.insert(3, 0, blockOf(2000)); // larger than the whole cache: not cached, nothing evicted
    expect(cache.get(3, 0)).toBeUndefined();
    expect(cache.stats.bytes).toBe(800);
    cache.insert(2, 0, blockOf(100)); // replacing an entry recharges it
    expect(cache.stats.bytes).toBe(500);
  });

  test('evictFile drops only that file', () => {
    const cache = new BlockCache(1 << 20);
    for (let f = 1; f <= 3; f++) for (let o = 0; o < 10; o++) cache.insert(f, o * 100, blockOf(100));
    cache.evictFile(2);
    expect(cache.stats.blocks).toBe(20);
    expect(cache.stats.bytes).toBe(2000);
    expect(cache.get(2, 0)).toBeUndefined();
    expect(cache.get(1, 900)).toBeDefined();
    expect(cache.get(3, 0)).toBeDefined();
    cache.evictFile(42); // unknown file: no-op
    // Eviction order still works after evictFile unlinked nodes from the middle of the list.
    const small = new BlockCache(300);
    small.insert(1, 0, blockOf(100));
    small.insert(2, 0, blockOf(100));
    small.insert(1, 1, blockOf(100));
    small.evictFile(2);
    small.insert(3, 0, blockOf(100));
    small.insert(3, 1, blockOf(100));
    expect(small.get(1, 0)).toBeUndefined();
    expect(small.get(1, 1)).toBeDefined();
    expect(small.stats.bytes).toBe(300);
  });

  test('regression: re-inserting the only block of a file keeps it findable and evictable', () => {
    const cache = new BlockCache(1000);
    cache.insert(1, 0, blockOf(100));
    cache.insert(1, 0, blockOf(200)); // used to land in a detached per-file map
    expect(cache.get(1, 0)?.charge).toBe(200);
    cache.evictFile(1);
    expect(cache.stats).toMatchObject({ bytes: 0, blocks: 0 });
    for (let i = 0; i < 20; i++) cache.insert(2, i, blockOf(100)); // evicts through the LRU list
    expect(cache.stats.bytes).toBe(1000);
  });

  test('random operations keep bytes within capacity and consistent', () => {
    const random = rng(SEED + 5);
    const cache = new BlockCache(10_000);
    const present = new Map<string, number>();
    for (let n = 0; n < 20_000; n++) {
      const file = Math.floor(random() * 5);
      const offset = Math.floor(random() * 50);
      const r = random();
      if (r < 0.5) {
        const size = 8 + Math.floor(random() * 900);
        cache.insert(file, offset, blockOf(size));
      } else if (r < 0.98) {
        const b = cache.get(file, offset);
        if (b) present.set(`${file}:${offset}`, b.charge);
      } else {
        cache.evictFile(file);
      }
      expect(cache.stats.bytes).toBeLessThanOrEqual(10_000);
      expect(cache.stats.bytes).toBeGreaterThanOrEqual(0);
    }
  });
});
