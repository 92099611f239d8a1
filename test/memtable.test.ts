// Tests for src/shm/memtable.ts (run against dist/: build with `npx tsc -p .` first).
// Random tests print their seed; rerun one with MEMTABLE_SEED=<seed>.
import { randomFillSync } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { Memtable } from '../dist/shm/memtable.js';
import { AssertionError } from '../dist/common/assert.js';
import { compareInternalKeys, makeInternalKey, readTrailer } from '../dist/common/keys.js';
import { CONTROL_DONE, CONTROL_PUBLISHED, CONTROL_SLOTS, keyFor, kindFor, valueFor } from './fixtures/memtable-entries.mjs';

const PUT = 1;
const DELETE = 0;
const SEQUENCE_MAX = Number.MAX_SAFE_INTEGER;

/** Deterministic xorshift32 so failures reproduce from the printed seed. */
function makeRandom(seed: number): { int(limit: number): number; bytes(length: number): Buffer } {
  let state = seed >>> 0 || 1;
  const next = (): number => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return state >>> 0;
  };
  return {
    int: (limit) => next() % limit,
    bytes: (length) => {
      const out = Buffer.allocUnsafe(length);
      for (let i = 0; i < length; i++) out[i] = next() & 0xff;
      return out;
    },
  };
}

function seedFor(name: string): number {
  const seed = process.env.MEMTABLE_SEED ? Number(process.env.MEMTABLE_SEED) : (Math.random() * 2 ** 32) >>> 0;
  console.log(`${name}: seed ${seed}`);
  return seed;
}

interface ModelEntry {
  userKey: Buffer;
  sequence: number;
  kind: number;
  value: Buffer;
  internalKey: Uint8Array;
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0;
}

/** Index of the first model entry >= target (model sorted by compareInternalKeys). */
function lowerBound(sorted: ModelEntry[], target: Uint8Array): number {
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (compareInternalKeys(sorted[mid].internalKey, target) < 0) low = mid + 1;
    else high = mid;
  }
  return low;
}

/** Newest entry of userKey with sequence <= snapshot, from the model. */
function modelGet(byKey: Map<string, ModelEntry[]>, userKey: Buffer, snapshot: number): ModelEntry | undefined {
  let best: ModelEntry | undefined;
  for (const entry of byKey.get(userKey.toString('hex')) ?? []) {
    if (entry.sequence <= snapshot && (best === undefined || entry.sequence > best.sequence)) best = entry;
  }
  return best;
}

function expectLookup(table: Memtable, byKey: Map<string, ModelEntry[]>, userKey: Buffer, snapshot: number): void {
  const expected = modelGet(byKey, userKey, snapshot);
  const actual = table.get(userKey, snapshot);
  if (expected === undefined) {
    expect(actual).toBeUndefined();
    return;
  }
  expect(actual).toBeDefined();
  expect(actual!.sequence).toBe(expected.sequence);
  expect(actual!.kind).toBe(expected.kind);
  expect(same(actual!.value, expected.value)).toBe(true);
}

/** Fills a memtable from random operations and returns the model. */
function fillRandom(
  table: Memtable,
  seed: number,
  operations: number,
  keySpace: number,
  sequenceOf: (index: number) => number,
): { sorted: ModelEntry[]; byKey: Map<string, ModelEntry[]>; keys: Buffer[] } {
  const random = makeRandom(seed);
  const keys: Buffer[] = [];
  const seen = new Set<string>();
  while (keys.length < keySpace) {
    const key = random.bytes(random.int(4) === 0 ? random.int(60) : random.int(20));
    if (!seen.has(key.toString('hex'))) {
      seen.add(key.toString('hex'));
      keys.push(key);
    }
  }
  const byKey = new Map<string, ModelEntry[]>();
  const all: ModelEntry[] = [];
  for (let i = 0; i < operations; i++) {
    const userKey = keys[random.int(keys.length)];
    const sequence = sequenceOf(i);
    const kind = random.int(10) === 0 ? DELETE : PUT;
    const value = kind === DELETE ? Buffer.alloc(0) : random.bytes(random.int(41));
    expect(table.add(sequence, kind, userKey, value)).toBe(true);
    const entry = { userKey, sequence, kind, value, internalKey: makeInternalKey(userKey, sequence, kind) };
    all.push(entry);
    const list = byKey.get(userKey.toString('hex'));
    if (list) list.push(entry);
    else byKey.set(userKey.toString('hex'), [entry]);
  }
  all.sort((a, b) => compareInternalKeys(a.internalKey, b.internalKey));
  return { sorted: all, byKey, keys };
}

function expectForwardScan(table: Memtable, sorted: ModelEntry[]): void {
  const it = table.iterator();
  let index = 0;
  for (it.seekToFirst(); it.valid(); it.next()) {
    const expected = sorted[index++];
    if (!same(it.key(), expected.internalKey) || !same(it.value(), expected.value)) {
      throw new Error(`forward scan differs from the model at index ${index - 1}`);
    }
  }
  expect(index).toBe(sorted.length);
  it.close();
}

function expectReverseScan(table: Memtable, sorted: ModelEntry[]): void {
  const it = table.iterator();
  let index = sorted.length;
  for (it.seekToLast(); it.valid(); it.prev()) {
    const expected = sorted[--index];
    if (!same(it.key(), expected.internalKey) || !same(it.value(), expected.value)) {
      throw new Error(`reverse scan differs from the model at index ${index}`);
    }
  }
  expect(index).toBe(0);
  it.close();
}

describe('Memtable against a sorted model', () => {
  it('200k random puts, overwrites and deletes: get, snapshots, scans, seeks', () => {
    const seed = seedFor('memtable model');
    const operations = 200_000;
    const table = Memtable.create(operations * Memtable.entryBytesMax(60, 40));
    const { sorted, byKey, keys } = fillRandom(table, seed, operations, 20_000, (i) => i + 1);
    const random = makeRandom(seed ^ 0x5bd1e995);

    expect(table.entryCount).toBe(operations);
    expect(table.smallestSequence).toBe(1);
    expect(table.largestSequence).toBe(operations);
    expect(table.usedBytes).toBeGreaterThan(0);
    expect(table.usedBytes).toBeLessThanOrEqual(table.capacityBytes);

    // Latest: every key, plus keys that were never written.
    for (const key of keys) expectLookup(table, byKey, key, SEQUENCE_MAX);
    for (let i = 0; i < 2000; i++) expectLookup(table, byKey, random.bytes(21 + random.int(5)), SEQUENCE_MAX);

    // Older snapshots, including one before everything.
    for (const snapshot of [0, 1, 777, random.int(operations), random.int(operations), operations - 1]) {
      for (let i = 0; i < 3000; i++) expectLookup(table, byKey, keys[random.int(keys.length)], snapshot);
    }

    expectForwardScan(table, sorted);
    expectReverseScan(table, sorted);

    // Seeks: existing user keys at random sequences and kinds, and random keys.
    const it = table.iterator();
    for (let i = 0; i < 20_000; i++) {
      const userKey = random.int(2) === 0 ? keys[random.int(keys.length)] : random.bytes(random.int(22));
      const target = makeInternalKey(userKey, random.int(operations + 2), random.int(2));
      const index = lowerBound(sorted, target);
      it.seek(target);
      if (index === sorted.length) {
        expect(it.valid()).toBe(false);
        continue;
      }
      expect(it.valid()).toBe(true);
      expect(same(it.key(), sorted[index].internalKey)).toBe(true);
      if (i % 2 === 0) {
        it.prev();
        if (index === 0) expect(it.valid()).toBe(false);
        else expect(same(it.key(), sorted[index - 1].internalKey)).toBe(true);
      } else {
        it.next();
        if (index + 1 === sorted.length) expect(it.valid()).toBe(false);
        else expect(same(it.key(), sorted[index + 1].internalKey)).toBe(true);
      }
    }
    it.close();
  }, 120_000);

  it('ascending runs (the insert finger) mixed with jumps back match the model; the key filter has no false negatives', () => {
    const seed = seedFor('memtable finger');
    const random = makeRandom(seed);
    const keys: Buffer[] = [];
    const seen = new Set<string>();
    // Shared prefixes of 0, 7 and 254 bytes exercise the word-at-a-time compare, its byte tail,
    // and (past 256 bytes) the byte-compare fallback.
    const prefixes = [Buffer.alloc(0), random.bytes(7), random.bytes(254)];
    while (keys.length < 5000) {
      const key = Buffer.concat([prefixes[random.int(3)], random.bytes(1 + random.int(12))]);
      if (!seen.has(key.toString('hex'))) { seen.add(key.toString('hex')); keys.push(key); }
    }
    const table = Memtable.create(60_000 * Memtable.entryBytesMax(267, 8));
    const byKey = new Map<string, ModelEntry[]>();
    const all: ModelEntry[] = [];
    let sequence = 1;
    while (all.length < 60_000) {
      // A run: sorted random keys (with repeats, so one user key gets several sequences in a
      // row, newest first as internal order wants, or oldest first as a jump back), like a group
      // the WAL worker sorted, or fillseq.
      const run = Array.from({ length: 1 + random.int(400) }, () => keys[random.int(keys.length)]);
      run.sort(Buffer.compare);
      if (random.int(4) === 0) run.reverse();
      const runSequences = Array.from({ length: run.length }, () => sequence++);
      if (random.int(2) === 0) runSequences.reverse();
      for (let i = 0; i < run.length && all.length < 60_000; i++) {
        const kind = random.int(10) === 0 ? DELETE : PUT;
        const value = kind === DELETE ? Buffer.alloc(0) : random.bytes(random.int(9));
        expect(table.add(runSequences[i], kind, run[i], value)).toBe(true);
        const entry = { userKey: run[i], sequence: runSequences[i], kind, value, internalKey: makeInternalKey(run[i], runSequences[i], kind) };
        all.push(entry);
        const list = byKey.get(run[i].toString('hex'));
        if (list) list.push(entry);
        else byKey.set(run[i].toString('hex'), [entry]);
      }
    }
    all.sort((a, b) => compareInternalKeys(a.internalKey, b.internalKey));
    expectForwardScan(table, all);
    expectReverseScan(table, all);
    for (const key of keys) expectLookup(table, byKey, key, SEQUENCE_MAX);
    for (let i = 0; i < 3000; i++) expectLookup(table, byKey, keys[random.int(keys.length)], 1 + random.int(sequence));
    // The filter: every added key passes; most absent keys do not (it is sized for >= 4 bits
    // per entry; ~5000 distinct keys in a filter sized for 60k entries give well under 1%).
    for (const key of keys) if (byKey.has(key.toString('hex'))) expect(table.mayContain(key)).toBe(true);
    let passed = 0;
    for (let i = 0; i < 10_000; i++) if (table.mayContain(Buffer.concat([prefixes[random.int(3)], random.bytes(14 + random.int(6))]))) passed++;
    expect(passed).toBeLessThan(200);
  }, 120_000);

  it('reuse() over a used buffer gives an empty memtable that then matches the model', () => {
    const seed = seedFor('memtable reuse');
    const arena = 20_000 * Memtable.entryBytesMax(60, 40);
    const first = Memtable.create(arena);
    const old = fillRandom(first, seed, 20_000, 5_000, (i) => i + 1);
    first.markImmutable();
    expect(() => Memtable.reuse(new SharedArrayBuffer(first.buffer.byteLength + 4), arena)).toThrow(AssertionError);
    const table = Memtable.reuse(first.buffer, arena);
    expect(table.buffer).toBe(first.buffer);
    expect(table.isImmutable).toBe(false);
    expect(table.entryCount).toBe(0);
    expect(table.usedBytes).toBe(0);
    const it = table.iterator();
    it.seekToFirst();
    expect(it.valid()).toBe(false);
    // The key filter was cleared too: old keys are (almost all) rejected before any search.
    let passed = 0;
    for (const key of old.keys) { expect(table.get(key, SEQUENCE_MAX)).toBeUndefined(); if (table.mayContain(key)) passed++; }
    expect(passed).toBe(0);
    const { sorted, byKey, keys } = fillRandom(table, seed ^ 0x1234, 20_000, 5_000, (i) => i + 1);
    expectForwardScan(table, sorted);
    for (const key of keys) expectLookup(table, byKey, key, SEQUENCE_MAX);
    // Another thread's view of the reused buffer sees the new contents.
    expect(Memtable.attach(table.buffer).entryCount).toBe(20_000);
  }, 60_000);

  it('accepts sequences in any order (bounds follow min and max)', () => {
    const seed = seedFor('memtable shuffled sequences');
    const operations = 20_000;
    const random = makeRandom(seed);
    const sequences = Array.from({ length: operations }, (_, i) => 2 ** 33 + i * 3);
    for (let i = sequences.length - 1; i > 0; i--) {
      const j = random.int(i + 1);
      [sequences[i], sequences[j]] = [sequences[j], sequences[i]];
    }
    const table = Memtable.create(operations * Memtable.entryBytesMax(60, 40));
    const { sorted, byKey, keys } = fillRandom(table, seed, operations, 3000, (i) => sequences[i]);
    expect(table.smallestSequence).toBe(2 ** 33);
    expect(table.largestSequence).toBe(2 ** 33 + (operations - 1) * 3);
    expectForwardScan(table, sorted);
    expectReverseScan(table, sorted);
    for (const key of keys) {
      expectLookup(table, byKey, key, SEQUENCE_MAX);
      expectLookup(table, byKey, key, sequences[random.int(operations)]);
    }
  }, 60_000);

  it('returns false exactly when the arena lacks entryBytesMax bytes, changing nothing', () => {
    const seed = seedFor('memtable full');
    const random = makeRandom(seed);
    const table = Memtable.create(64 * 1024);
    const byKey = new Map<string, ModelEntry[]>();
    const accepted: ModelEntry[] = [];
    let refusals = 0;
    for (let sequence = 1; refusals < 200; sequence++) {
      const userKey = random.bytes(random.int(30));
      const value = random.bytes(random.int(300));
      const fits = table.usedBytes + Memtable.entryBytesMax(userKey.length, value.length) <= table.capacityBytes;
      const usedBefore = table.usedBytes;
      const countBefore = table.entryCount;
      expect(table.add(sequence, PUT, userKey, value)).toBe(fits);
      if (!fits) {
        refusals++;
        expect(table.usedBytes).toBe(usedBefore);
        expect(table.entryCount).toBe(countBefore);
        continue;
      }
      const entry = { userKey, sequence, kind: PUT, value, internalKey: makeInternalKey(userKey, sequence, PUT) };
      accepted.push(entry);
      const list = byKey.get(userKey.toString('hex'));
      if (list) list.push(entry);
      else byKey.set(userKey.toString('hex'), [entry]);
    }
    expect(table.capacityBytes - table.usedBytes).toBeLessThan(Memtable.entryBytesMax(29, 299));
    expect(table.entryCount).toBe(accepted.length);
    expect(table.largestSequence).toBe(accepted[accepted.length - 1].sequence);
    accepted.sort((a, b) => compareInternalKeys(a.internalKey, b.internalKey));
    expectForwardScan(table, accepted);
    expectReverseScan(table, accepted);
    for (const entry of accepted) expectLookup(table, byKey, entry.userKey, SEQUENCE_MAX);
  });

  it('a memtable sized with entryBytesMax holds exactly that entry', () => {
    const key = Buffer.from('exact');
    const value = Buffer.from('0123456789');
    const table = Memtable.create(Memtable.entryBytesMax(key.length, value.length));
    expect(table.add(5, PUT, key, value)).toBe(true);
    expect(table.add(6, DELETE, Buffer.alloc(0), Buffer.alloc(0))).toBe(false);
    expect(table.entryCount).toBe(1);
    expect(table.get(key, 5)?.value.toString()).toBe('0123456789');
    expect(table.get(key, 4)).toBeUndefined();
  });

  it('empty table, Delete lookups, sequences above 2^32, trailers match keys.ts', () => {
    const table = Memtable.create(4096);
    expect(table.entryCount).toBe(0);
    expect(table.smallestSequence).toBe(0);
    expect(table.largestSequence).toBe(0);
    const it = table.iterator();
    it.seekToFirst();
    expect(it.valid()).toBe(false);
    it.seekToLast();
    expect(it.valid()).toBe(false);
    it.seek(makeInternalKey(Buffer.from('a'), 1, PUT));
    expect(it.valid()).toBe(false);
    expect(table.get(Buffer.from('a'), SEQUENCE_MAX)).toBeUndefined();

    const big = 2 ** 52 + 12345;
    expect(table.add(big, PUT, Buffer.from('a'), Buffer.from('v1'))).toBe(true);
    expect(table.add(big + 1, DELETE, Buffer.from('a'), Buffer.alloc(0))).toBe(true);
    expect(table.add(3, PUT, Buffer.alloc(0), Buffer.from('empty key'))).toBe(true);
    expect(table.get(Buffer.from('a'), SEQUENCE_MAX)).toMatchObject({ kind: DELETE, sequence: big + 1 });
    expect(table.get(Buffer.from('a'), big)?.value.toString()).toBe('v1');
    expect(table.get(Buffer.alloc(0), 3)?.value.toString()).toBe('empty key');
    expect(table.smallestSequence).toBe(3);
    expect(table.largestSequence).toBe(big + 1);

    it.seekToFirst();
    expect(same(it.key(), makeInternalKey(Buffer.alloc(0), 3, PUT))).toBe(true);
    it.next();
    expect(same(it.key(), makeInternalKey(Buffer.from('a'), big + 1, DELETE))).toBe(true);
    expect(readTrailer(it.key(), 1)).toEqual({ sequence: big + 1, kind: DELETE });
    it.next();
    expect(readTrailer(it.key(), 1)).toEqual({ sequence: big, kind: PUT });
    it.next();
    expect(it.valid()).toBe(false);
    it.close();
    expect(() => it.seekToFirst()).toThrow(AssertionError);
  });

  it('get returns a copy; attach shares state; immutability is enforced; bad buffers are refused', () => {
    const table = Memtable.create(4096);
    table.add(1, PUT, Buffer.from('k'), Buffer.from('value'));
    const result = table.get(Buffer.from('k'), 1)!;
    result.value[0] = 0x58;
    expect(table.get(Buffer.from('k'), 1)!.value.toString()).toBe('value');

    const other = Memtable.attach(table.buffer);
    expect(other.entryCount).toBe(1);
    expect(other.capacityBytes).toBe(table.capacityBytes);
    table.add(2, PUT, Buffer.from('j'), Buffer.from('w'));
    expect(other.get(Buffer.from('j'), 9)?.value.toString()).toBe('w');
    expect(other.isImmutable).toBe(false);
    table.markImmutable();
    expect(other.isImmutable).toBe(true);
    expect(() => table.add(3, PUT, Buffer.from('x'), Buffer.from('y'))).toThrow(AssertionError);

    expect(() => Memtable.attach(new SharedArrayBuffer(4096))).toThrow(AssertionError);
    expect(() => Memtable.create(2 ** 30 + 1)).toThrow(AssertionError);
    const fresh = Memtable.create(4096);
    fresh.add(7, PUT, Buffer.from('k'), Buffer.from('v'));
    expect(() => fresh.add(7, DELETE, Buffer.from('k'), Buffer.alloc(0))).toThrow(AssertionError);
    expect(fresh.entryCount).toBe(1);
  });

  it('round-trips a 64 MiB value in a memtable sized with entryBytesMax', () => {
    const valueBytes = 64 * 1024 * 1024;
    const value = Buffer.allocUnsafe(valueBytes);
    randomFillSync(value);
    const key = Buffer.from('huge');
    const table = Memtable.create(Memtable.entryBytesMax(key.length, valueBytes));
    expect(table.add(42, PUT, key, value)).toBe(true);
    const result = table.get(key, 42)!;
    expect(result.sequence).toBe(42);
    expect(result.value.length).toBe(valueBytes);
    expect(Buffer.compare(result.value, value)).toBe(0);
    const it = table.iterator();
    it.seekToFirst();
    expect(it.value().length).toBe(valueBytes);
    expect(Buffer.compare(it.value(), value)).toBe(0);
    expect(table.add(43, PUT, Buffer.from('x'), Buffer.alloc(0))).toBe(false);
  }, 60_000);
});

describe('Memtable concurrency', () => {
  it('readers see sorted, untorn entries and every published entry while a worker writes', async () => {
    const count = 400_000;
    const table = Memtable.create(Math.floor((count * Memtable.entryBytesMax(70, 64)) / 3));
    const control = new Int32Array(new SharedArrayBuffer(CONTROL_SLOTS * 4));
    const worker = new Worker(new URL('./fixtures/memtable-writer.mjs', import.meta.url), {
      workerData: { memtableBuffer: table.buffer, controlBuffer: control.buffer, count },
    });
    const exited = new Promise<number>((resolve, reject) => {
      worker.once('error', reject);
      worker.once('exit', resolve);
    });

    const seen = new Uint8Array(count + 1);
    const random = makeRandom(seedFor('memtable concurrency'));
    const deadline = Date.now() + 60_000;
    let scans = 0;
    let lookups = 0;
    let concurrentScans = 0;

    /** Checks one iterator position: key bytes and value match what the writer wrote. */
    const checkEntry = (key: Uint8Array, value: Uint8Array): number => {
      const { sequence, kind } = readTrailer(key, key.length - 8);
      if (sequence < 1 || sequence > count) throw new Error(`foreign sequence ${sequence}`);
      if (kind !== kindFor(sequence)) throw new Error(`torn kind at sequence ${sequence}`);
      if (!same(key.subarray(0, key.length - 8), keyFor(sequence))) throw new Error(`torn key at sequence ${sequence}`);
      if (!same(value, valueFor(sequence))) throw new Error(`torn value at sequence ${sequence}`);
      return sequence;
    };

    for (;;) {
      // Why Atomics: read the writer's progress before looking, so all of it must be visible.
      const done = Atomics.load(control, CONTROL_DONE) === 1;
      const published = Atomics.load(control, CONTROL_PUBLISHED);
      if (!done && published > 0) concurrentScans++;

      // A full forward scan: strictly increasing, untorn, containing every published entry.
      seen.fill(0);
      const it = table.iterator();
      let previous: Uint8Array | undefined;
      let entries = 0;
      for (it.seekToFirst(); it.valid(); it.next()) {
        const key = it.key();
        if (previous !== undefined && compareInternalKeys(previous, key) >= 0) throw new Error('scan out of order');
        seen[checkEntry(key, it.value())] = 1;
        previous = key;
        entries++;
      }
      for (let sequence = 1; sequence <= published; sequence++) {
        if (seen[sequence] !== 1) throw new Error(`published sequence ${sequence} missing from scan`);
      }
      expect(entries).toBeGreaterThanOrEqual(published);
      scans++;

      // Point lookups and seeks of published entries, and a short reverse walk.
      // Odd lookups chase the writer: the entry it published a moment ago.
      for (let i = 0; i < 2000 && published > 0; i++) {
        const sequence = i % 2 === 1 ? Atomics.load(control, CONTROL_PUBLISHED) : 1 + random.int(published);
        const result = table.get(keyFor(sequence), sequence);
        if (result === undefined || result.sequence !== sequence || result.kind !== kindFor(sequence)) {
          throw new Error(`published sequence ${sequence} not found by get`);
        }
        if (!same(result.value, valueFor(sequence))) throw new Error(`get returned a torn value at ${sequence}`);
        lookups++;
      }
      it.seekToLast();
      let next: Uint8Array | undefined;
      for (let steps = 0; steps < 2000 && it.valid(); steps++, it.prev()) {
        const key = it.key();
        checkEntry(key, it.value());
        if (next !== undefined && compareInternalKeys(key, next) >= 0) throw new Error('reverse walk out of order');
        next = key;
      }
      it.close();

      if (done) break;
      if (Date.now() > deadline) throw new Error('writer did not finish in time');
    }

    expect(await exited).toBe(0);
    const published = Atomics.load(control, CONTROL_PUBLISHED);
    expect(table.entryCount).toBe(published);
    expect(published).toBeGreaterThan(10_000);
    for (let sequence = 1; sequence <= published; sequence++) {
      if (table.get(keyFor(sequence), sequence)?.sequence !== sequence) throw new Error(`sequence ${sequence} lost`);
    }
    console.log(`memtable concurrency: ${published} entries, ${scans} scans (${concurrentScans} non-empty during writes), ${lookups} lookups`);
    expect(concurrentScans).toBeGreaterThan(0);
  }, 120_000);
});
