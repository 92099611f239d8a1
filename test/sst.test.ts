// SST round trips: builder → reader against a sorted in-memory model, under several option
// sets. Seeded; the seed is printed (override with SST_TEST_SEED).

import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { compareInternalKeys, makeInternalKey } from '../dist/common/keys.js';
import { BlockCache } from '../dist/sst/block-cache.js';
import { BloomBuilder, BloomFilter } from '../dist/sst/bloom.js';
import { TableBuilder, type TableBuilderOptions } from '../dist/sst/table-builder.js';
import { TableReader } from '../dist/sst/table-reader.js';
import { rng } from './helpers/random.mjs';

const SEED = Number(process.env.SST_TEST_SEED ?? Date.now() % 1_000_000_007);
console.log(`sst.test.ts seed=${SEED}`);


interface Entry {
  userKey: Buffer;
  sequence: number;
  kind: number;
  key: Buffer; // internal key
  value: Buffer;
}

const DELETE = 0;
const PUT = 1;

/** ~count entries over random user keys, 1-5 versions each, ~15% tombstones, sorted. */
function makeModel(random: () => number, count: number): Entry[] {
  const users = new Map<string, Buffer>();
  const entries: Entry[] = [];
  while (entries.length < count) {
    const length = 1 + Math.floor(random() * 20);
    const userKey = Buffer.alloc(length);
    // A small alphabet makes shared prefixes (and prefix-of-another keys) common.
    for (let i = 0; i < length; i++) userKey[i] = 97 + Math.floor(random() * 6);
    const id = userKey.toString('latin1');
    if (users.has(id)) continue;
    users.set(id, userKey);
    const versions = 1 + Math.floor(random() * 5);
    const sequences = new Set<number>();
    while (sequences.size < versions) sequences.add(1 + Math.floor(random() * 1_000_000));
    for (const sequence of sequences) {
      const kind = random() < 0.15 ? DELETE : PUT;
      const value = kind === DELETE ? Buffer.alloc(0) : Buffer.from(Array.from({ length: Math.floor(random() * 80) }, () => Math.floor(random() * 256)));
      entries.push({ userKey, sequence, kind, key: Buffer.from(makeInternalKey(userKey, sequence, kind)), value });
    }
  }
  entries.sort((a, b) => compareInternalKeys(a.key, b.key));
  return entries;
}

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stemedb-sst-'));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

let fileCounter = 0;
function build(entries: { key: Uint8Array; value: Uint8Array }[], options: TableBuilderOptions): string {
  const file = path.join(dir, `${++fileCounter}.sst`);
  const fd = fs.openSync(file, 'w');
  const builder = new TableBuilder(fd, file, options);
  for (const e of entries) builder.add(e.key, e.value);
  const props = builder.finish();
  fs.closeSync(fd);
  expect(props.fileSize).toBe(fs.statSync(file).size);
  expect(props.entryCount).toBe(entries.length);
  return file;
}

/** Index of the first model entry >= target (internal-key order). */
function lowerBound(model: Entry[], target: Uint8Array): number {
  let lo = 0;
  let hi = model.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareInternalKeys(model[mid].key, target) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function expectedGet(model: Entry[], userKey: Uint8Array, snapshot: number): Entry | undefined {
  const i = lowerBound(model, makeInternalKey(userKey, snapshot, PUT));
  return i < model.length && model[i].userKey.equals(userKey) ? model[i] : undefined;
}

function checkLookup(actual: { kind: number; sequence: number; value: Uint8Array } | undefined, expected: Entry | undefined): void {
  if (expected === undefined) {
    expect(actual).toBeUndefined();
    return;
  }
  expect(actual).toBeDefined();
  expect(actual!.sequence).toBe(expected.sequence);
  expect(actual!.kind).toBe(expected.kind);
  expect(Buffer.from(actual!.value).equals(expected.value)).toBe(true);
}

function checkIteration(reader: TableReader, model: Entry[], random: () => number): void {
  const it = reader.iterator();
  let i = 0;
  for (it.seekToFirst(); it.valid(); it.next(), i++) {
    if (!Buffer.from(it.key()).equals(model[i].key) || !Buffer.from(it.value()).equals(model[i].value)) {
      throw new Error(`forward iteration differs at ${i}`);
    }
  }
  expect(i).toBe(model.length);
  i = model.length - 1;
  for (it.seekToLast(); it.valid(); it.prev(), i--) {
    if (!Buffer.from(it.key()).equals(model[i].key) || !Buffer.from(it.value()).equals(model[i].value)) {
      throw new Error(`reverse iteration differs at ${i}`);
    }
  }
  expect(i).toBe(-1);

  for (let s = 0; s < 2000; s++) {
    const base = model[Math.floor(random() * model.length)];
    const target =
      random() < 0.5
        ? makeInternalKey(base.userKey, Math.floor(random() * 1_100_000), random() < 0.5 ? PUT : DELETE)
        : makeInternalKey(Buffer.from(Array.from({ length: 1 + Math.floor(random() * 6) }, () => 96 + Math.floor(random() * 8))), Math.floor(random() * 1e6), PUT);
    it.seek(target);
    const at = lowerBound(model, target);
    if (at === model.length) {
      expect(it.valid()).toBe(false);
      continue;
    }
    expect(it.valid()).toBe(true);
    expect(Buffer.from(it.key()).equals(model[at].key)).toBe(true);
    // Step a little both ways across block boundaries.
    const steps = Math.floor(random() * 5);
    let j = at;
    for (let k = 0; k < steps && it.valid(); k++, j++) it.next();
    if (j < model.length) expect(Buffer.from(it.key()).equals(model[j].key)).toBe(true);
    else expect(it.valid()).toBe(false);
    if (j < model.length) {
      for (let k = 0; k < steps + 1; k++, j--) it.prev();
      if (j >= 0) expect(Buffer.from(it.key()).equals(model[j].key)).toBe(true);
      else expect(it.valid()).toBe(false);
    }
  }
  it.close();
}

function checkGets(reader: TableReader, model: Entry[], random: () => number): void {
  const byUser = new Map<string, Entry[]>();
  for (const e of model) {
    const id = e.userKey.toString('latin1');
    let list = byUser.get(id);
    if (!list) byUser.set(id, (list = []));
    list.push(e);
  }
  let checked = 0;
  for (const versions of byUser.values()) {
    const userKey = versions[0].userKey;
    const snapshots = [Number.MAX_SAFE_INTEGER, 0, Math.floor(random() * 1_000_000)];
    for (const v of versions) snapshots.push(v.sequence, v.sequence - 1);
    for (const snapshot of snapshots) {
      const expected = expectedGet(model, userKey, snapshot);
      const actual = reader.getSync(userKey, snapshot);
      if (expected === undefined ? actual !== undefined : !actual || actual.sequence !== expected.sequence || actual.kind !== expected.kind || !Buffer.from(actual.value).equals(expected.value)) {
        checkLookup(actual, expected); // produces a readable failure
      }
      checked++;
    }
  }
  expect(checked).toBeGreaterThan(model.length);
  // Keys that are not in the table at all.
  for (let i = 0; i < 2000; i++) {
    const absent = Buffer.from(`zz-absent-${i}`);
    expect(reader.getSync(absent, Number.MAX_SAFE_INTEGER)).toBeUndefined();
  }
}

async function checkAsyncGets(reader: TableReader, model: Entry[], random: () => number): Promise<void> {
  const pending: Promise<void>[] = [];
  for (let i = 0; i < 3000; i++) {
    const e = model[Math.floor(random() * model.length)];
    const snapshot = random() < 0.5 ? Number.MAX_SAFE_INTEGER : e.sequence + Math.floor(random() * 3) - 1;
    const expected = expectedGet(model, e.userKey, snapshot);
    pending.push(reader.get(e.userKey, snapshot).then((actual) => checkLookup(actual, expected)));
  }
  await Promise.all(pending);
}

describe('SST round trip', () => {
  test('100k internal keys: gets at snapshots, forward/reverse iteration, seeks, async open/get', async () => {
    const random = rng(SEED);
    const model = makeModel(random, 100_000);
    const file = build(model, { blockSize: 4096, compression: true });
    const cache = new BlockCache(8 * 1024 * 1024);
    const reader = TableReader.openSync(file, 1, cache);
    expect(reader.entryCount).toBe(model.length);
    expect(reader.fileSize).toBe(fs.statSync(file).size);
    checkGets(reader, model, random);
    checkIteration(reader, model, random);
    await checkAsyncGets(reader, model, random);
    expect(reader.verifySync()).toEqual({ ok: true, problems: [] });
    expect(cache.stats.hits).toBeGreaterThan(0);
    expect(cache.stats.bytes).toBeLessThanOrEqual(8 * 1024 * 1024);
    reader.close();

    const asyncReader = await TableReader.open(file, 2); // no cache: every block read hits the file
    await checkAsyncGets(asyncReader, model, random);
    asyncReader.close();
  }, 120_000);

  test('properties: smallest/largest keys and sequences', () => {
    const random = rng(SEED + 1);
    const model = makeModel(random, 5000);
    const file = path.join(dir, 'props.sst');
    const fd = fs.openSync(file, 'w');
    const builder = new TableBuilder(fd, file, { blockSize: 1024, compression: false });
    for (const e of model) builder.add(e.key, e.value);
    expect(builder.estimatedFileSize).toBeGreaterThan(0);
    const props = builder.finish();
    fs.closeSync(fd);
    expect(Buffer.from(props.smallestKey).equals(model[0].key)).toBe(true);
    expect(Buffer.from(props.largestKey).equals(model[model.length - 1].key)).toBe(true);
    expect(props.smallestSequence).toBe(Math.min(...model.map((e) => e.sequence)));
    expect(props.largestSequence).toBe(Math.max(...model.map((e) => e.sequence)));
    expect(Math.abs(props.fileSize - fs.statSync(file).size)).toBe(0);
  });

  const variants: [string, TableBuilderOptions][] = [
    ['blockSize 64, restart 1, lz4', { blockSize: 64, compression: true, restartInterval: 1 }],
    ['blockSize 1 (one entry per block), raw', { blockSize: 1, compression: false }],
    ['blockSize 1024, raw, restart 4', { blockSize: 1024, compression: false, restartInterval: 4 }],
    ['blockSize 16384, lz4, no bloom', { blockSize: 16384, compression: true, bloomBitsPerKey: 0 }],
    ['blockSize 256 KiB, lz4, restart 128, 20 bits/key', { blockSize: 256 * 1024, compression: true, restartInterval: 128, bloomBitsPerKey: 20 }],
  ];
  for (const [name, options] of variants) {
    test(`variant: ${name}`, async () => {
      const random = rng(SEED + name.length);
      const model = makeModel(random, 20_000);
      const file = build(model, options);
      const reader = TableReader.openSync(file, 7, new BlockCache(1024 * 1024));
      checkGets(reader, model, random);
      checkIteration(reader, model, random);
      await checkAsyncGets(reader, model, random);
      expect(reader.verifySync().ok).toBe(true);
      reader.close();
    }, 60_000);
  }

  test('compression shrinks a compressible table; raw tables store blocks uncompressed', () => {
    const entries = Array.from({ length: 5000 }, (_, i) => ({
      key: makeInternalKey(Buffer.from(`key-${String(i).padStart(6, '0')}`), 1, PUT),
      value: Buffer.alloc(100, i % 7),
    }));
    const lz4 = fs.statSync(build(entries, { blockSize: 4096, compression: true })).size;
    const raw = fs.statSync(build(entries, { blockSize: 4096, compression: false })).size;
    expect(lz4).toBeLessThan(raw / 3);
  });

  test('empty table', async () => {
    const file = build([], { blockSize: 4096, compression: true });
    const reader = await TableReader.open(file, 3);
    expect(reader.entryCount).toBe(0);
    expect(reader.getSync(Buffer.from('a'), 10)).toBeUndefined();
    expect(reader.mayContain(Buffer.from('a'))).toBe(false);
    const it = reader.iterator();
    it.seekToFirst();
    expect(it.valid()).toBe(false);
    it.seekToLast();
    expect(it.valid()).toBe(false);
    it.seek(makeInternalKey(Buffer.from('a'), 1, PUT));
    expect(it.valid()).toBe(false);
    expect(reader.verifySync().ok).toBe(true);
    reader.close();
  });

  test('a 64 MiB value is its own block and round-trips (lz4 and raw)', async () => {
    const big = Buffer.alloc(64 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 4096) big.writeUInt32LE(i, i); // compressible but not constant
    const entries = [
      { key: makeInternalKey(Buffer.from('a'), 5, PUT), value: Buffer.from('small-a') },
      { key: makeInternalKey(Buffer.from('b'), 6, PUT), value: big },
      { key: makeInternalKey(Buffer.from('c'), 7, PUT), value: Buffer.from('small-c') },
    ];
    for (const compression of [true, false]) {
      const file = build(entries, { blockSize: 4096, compression });
      const reader = TableReader.openSync(file, 9, new BlockCache(16 * 1024 * 1024));
      expect(reader.dataBlockHandles().length).toBe(3);
      const got = reader.getSync(Buffer.from('b'), 100);
      expect(got?.sequence).toBe(6);
      expect(Buffer.from(got!.value).equals(big)).toBe(true);
      const gotAsync = await reader.get(Buffer.from('b'), 100);
      expect(Buffer.from(gotAsync!.value).equals(big)).toBe(true);
      expect(Buffer.from(reader.getSync(Buffer.from('c'), 100)!.value).toString()).toBe('small-c');
      const it = reader.iterator();
      it.seekToLast();
      it.prev();
      expect(it.value().length).toBe(big.length);
      expect(reader.verifySync().ok).toBe(true);
      reader.close();
      if (compression) expect(fs.statSync(file).size).toBeLessThan(big.length / 2);
      fs.unlinkSync(file);
    }
  }, 120_000);
});

describe('bloom filter', () => {
  test('10 bits/key: no false negatives, false-positive rate <= 2%', () => {
    const keys = 100_000;
    const builder = new BloomBuilder(10);
    for (let i = 0; i < keys; i++) builder.addKey(Buffer.from(`present-${i}`));
    const filter = new BloomFilter(builder.finish());
    for (let i = 0; i < keys; i++) expect(filter.mayContain(Buffer.from(`present-${i}`))).toBe(true);
    let falsePositives = 0;
    for (let i = 0; i < keys; i++) if (filter.mayContain(Buffer.from(`absent-${i}`))) falsePositives++;
    const rate = falsePositives / keys;
    console.log(`bloom false-positive rate at 10 bits/key: ${(rate * 100).toFixed(3)}%`);
    expect(rate).toBeLessThanOrEqual(0.02);
  });

  test('the table filter is over user keys: every version of a key matches, absent keys mostly do not', () => {
    const random = rng(SEED + 2);
    const model = makeModel(random, 20_000);
    const file = build(model, { blockSize: 4096, compression: true });
    const reader = TableReader.openSync(file, 4);
    for (const e of model) expect(reader.mayContain(e.userKey)).toBe(true);
    let falsePositives = 0;
    for (let i = 0; i < 20_000; i++) if (reader.mayContain(Buffer.from(`missing-${i}`))) falsePositives++;
    expect(falsePositives / 20_000).toBeLessThanOrEqual(0.02);
    reader.close();
  });

  test('bits per key changes the false-positive rate', () => {
    const rateAt = (bitsPerKey: number) => {
      const builder = new BloomBuilder(bitsPerKey);
      for (let i = 0; i < 20_000; i++) builder.addKey(Buffer.from(`k${i}`));
      const filter = new BloomFilter(builder.finish());
      let fp = 0;
      for (let i = 0; i < 20_000; i++) if (filter.mayContain(Buffer.from(`x${i}`))) fp++;
      return fp / 20_000;
    };
    expect(rateAt(4)).toBeGreaterThan(rateAt(16));
  });
});
