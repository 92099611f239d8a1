// SST corruption: damaged files must yield CorruptionError (code LEVEL_CORRUPTION) naming the
// file and offset, or correct data, never wrong data. Seeded (SST_TEST_SEED); seed printed.

import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CorruptionError } from '../dist/common/errors.js';
import { makeInternalKey } from '../dist/common/keys.js';
import { BlockCache } from '../dist/sst/block-cache.js';
import { BLOCK_TRAILER_BYTES, encodeBlockTrailer, FOOTER_BYTES, TABLE_MAGIC } from '../dist/sst/format.js';
import { TableBuilder } from '../dist/sst/table-builder.js';
import { TableReader } from '../dist/sst/table-reader.js';
import { rng } from './helpers/random.mjs';

const SEED = Number(process.env.SST_TEST_SEED ?? Date.now() % 1_000_000_007);
console.log(`sst-corruption.test.ts seed=${SEED}`);


const PUT = 1;
const DELETE = 0;

interface Entry {
  userKey: Buffer;
  sequence: number;
  kind: number;
  key: Uint8Array;
  value: Buffer;
}

/** 400 keys, one version each (so a get at MAX answers with exactly that entry). */
const model: Entry[] = Array.from({ length: 400 }, (_, i) => {
  const userKey = Buffer.from(`user-${String(i).padStart(5, '0')}`);
  const kind = i % 11 === 0 ? DELETE : PUT;
  const value = kind === DELETE ? Buffer.alloc(0) : Buffer.from(`value-${i}-`.repeat(1 + (i % 9)));
  return { userKey, sequence: 1000 + i, kind, key: makeInternalKey(userKey, 1000 + i, kind), value };
});

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stemedb-sst-corrupt-'));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function build(file: string, compression: boolean): Buffer {
  const fd = fs.openSync(file, 'w');
  const builder = new TableBuilder(fd, file, { blockSize: 512, compression });
  for (const e of model) builder.add(e.key, e.value);
  builder.finish();
  fs.closeSync(fd);
  return fs.readFileSync(file);
}

function isCorruption(e: unknown): boolean {
  return e instanceof CorruptionError && (e as CorruptionError).code === 'LEVEL_CORRUPTION';
}

function expectCorruption(fn: () => unknown, file: string, offset?: number): CorruptionError {
  try {
    fn();
  } catch (e) {
    expect(isCorruption(e), String(e)).toBe(true);
    const c = e as CorruptionError;
    expect(c.file).toBe(file);
    if (offset !== undefined) expect(c.offset).toBe(offset);
    return c;
  }
  throw new Error('expected a CorruptionError');
}

/**
 * Opens the damaged file and reads everything every way; each answer must be right or a
 * CorruptionError. Returns whether any corruption was reported.
 */
async function readAll(file: string): Promise<boolean> {
  let reported = false;
  const attempt = <T>(fn: () => T): T | undefined => {
    try {
      return fn();
    } catch (e) {
      if (!isCorruption(e)) throw e;
      reported = true;
      return undefined;
    }
  };
  const reader = attempt(() => TableReader.openSync(file, 1, new BlockCache(64 * 1024)));
  if (reader === undefined) {
    // The async open must agree.
    await expect(TableReader.open(file, 1)).rejects.toSatisfy(isCorruption);
    return true;
  }
  try {
    for (const e of model) {
      const got = attempt(() => reader.getSync(e.userKey, Number.MAX_SAFE_INTEGER));
      if (got !== undefined) {
        expect(got.sequence).toBe(e.sequence);
        expect(got.kind).toBe(e.kind);
        expect(Buffer.from(got.value).equals(e.value)).toBe(true);
      }
      // An older snapshot than any version: must be absent, or corruption.
      expect(attempt(() => reader.getSync(e.userKey, e.sequence - 1) ?? null) ?? null).toBeNull();
    }
    for (let i = 0; i < model.length; i += 37) {
      try {
        const got = await reader.get(model[i].userKey, Number.MAX_SAFE_INTEGER);
        if (got !== undefined) expect(Buffer.from(got.value).equals(model[i].value)).toBe(true);
      } catch (e) {
        if (!isCorruption(e)) throw e;
        reported = true;
      }
    }
    // Iteration yields a prefix of the model, then stops or throws corruption.
    const it = reader.iterator();
    let i = 0;
    attempt(() => {
      for (it.seekToFirst(); it.valid(); it.next(), i++) {
        expect(Buffer.from(it.key()).equals(Buffer.from(model[i].key))).toBe(true);
        expect(Buffer.from(it.value()).equals(model[i].value)).toBe(true);
      }
    });
    let j = model.length - 1;
    attempt(() => {
      for (it.seekToLast(); it.valid(); it.prev(), j--) {
        expect(Buffer.from(it.key()).equals(Buffer.from(model[j].key))).toBe(true);
      }
    });
    const report = reader.verifySync();
    if (!report.ok) {
      reported = true;
      for (const p of report.problems) expect(p.offset).toBeGreaterThanOrEqual(0);
    }
    // If every read succeeded, the iteration saw everything.
    if (!reported) {
      expect(i).toBe(model.length);
      expect(j).toBe(-1);
    }
  } finally {
    reader.close();
  }
  return reported;
}

describe('SST corruption', () => {
  for (const compression of [false, true]) {
    test(`random byte flips (${compression ? 'lz4' : 'raw'}): right data or LEVEL_CORRUPTION, never wrong data`, async () => {
      const random = rng(SEED + (compression ? 1 : 0));
      const original = build(path.join(dir, `orig-${compression}.sst`), compression);
      const damaged = path.join(dir, `damaged-${compression}.sst`);
      const flips = 300;
      for (let n = 0; n < flips; n++) {
        const bytes = Buffer.from(original);
        const at = Math.floor(random() * bytes.length);
        bytes[at] ^= 1 + Math.floor(random() * 255);
        fs.writeFileSync(damaged, bytes);
        // Every byte of an SST is covered by a checksum or the magic, so every flip is detected.
        const reported = await readAll(damaged);
        expect(reported, `flip at ${at} of ${bytes.length} went unnoticed`).toBe(true);
      }
    }, 120_000);
  }

  test('targeted flips: data block, filter, index, footer', () => {
    const file = path.join(dir, 'targets.sst');
    const original = build(file, true);
    const reader = TableReader.openSync(file, 1);
    const handles = reader.dataBlockHandles();
    reader.close();
    expect(handles.length).toBeGreaterThan(5);
    const lastData = handles[handles.length - 1];
    const filterOffset = lastData.offset + lastData.size + BLOCK_TRAILER_BYTES;
    const footerOffset = original.length - FOOTER_BYTES;

    const damage = (at: number) => {
      const bytes = Buffer.from(original);
      bytes[at] ^= 0x40;
      fs.writeFileSync(file, bytes);
    };

    // A data block: open succeeds, reads of that block fail naming its offset, others still work.
    const victim = handles[2];
    damage(victim.offset + 3);
    const r = TableReader.openSync(file, 1);
    let failed = 0;
    for (const e of model) {
      try {
        const got = r.getSync(e.userKey, Number.MAX_SAFE_INTEGER);
        expect(Buffer.from(got!.value).equals(e.value)).toBe(true);
      } catch (err) {
        expect(isCorruption(err)).toBe(true);
        expect((err as CorruptionError).offset).toBe(victim.offset);
        failed++;
      }
    }
    expect(failed).toBeGreaterThan(0);
    expect(failed).toBeLessThan(model.length);
    const report = r.verifySync();
    expect(report.ok).toBe(false);
    expect(report.problems.map((p) => p.offset)).toContain(victim.offset);
    const it = r.iterator();
    expectCorruption(() => {
      for (it.seekToFirst(); it.valid(); it.next()) { /* walk into the bad block */ }
    }, file, victim.offset);
    expect(it.valid()).toBe(false);
    r.close();

    // The block trailer (compression byte, size, checksum) is covered too.
    damage(victim.offset + victim.size);
    const r2 = TableReader.openSync(file, 1);
    expect(r2.verifySync().ok).toBe(false);
    r2.close();

    // Filter block: the open fails (the filter is read and verified at open).
    damage(filterOffset + 1);
    expectCorruption(() => TableReader.openSync(file, 1), file, filterOffset);

    // Index block: last meta block before the footer; its offset is reported.
    const indexByte = footerOffset - BLOCK_TRAILER_BYTES - 2;
    damage(indexByte);
    const indexError = expectCorruption(() => TableReader.openSync(file, 1), file);
    expect(indexError.offset).toBeGreaterThan(filterOffset);
    expect(indexError.offset).toBeLessThan(footerOffset);

    // Footer: handles, padding, entry count, version, checksum, magic.
    for (let at = footerOffset; at < original.length; at++) {
      damage(at);
      const e = expectCorruption(() => TableReader.openSync(file, 1), file);
      expect(e.offset).toBeGreaterThanOrEqual(footerOffset);
    }

    // Truncation anywhere.
    for (const length of [0, 10, FOOTER_BYTES - 1, Math.floor(original.length / 2), original.length - 1]) {
      fs.writeFileSync(file, original.subarray(0, length));
      expectCorruption(() => TableReader.openSync(file, 1), file);
    }
  });

  test('a corrupt LZ4 size prefix (with a valid checksum) neither allocates nor decodes', () => {
    const file = path.join(dir, 'lz4.sst');
    const original = build(file, true);
    const reader = TableReader.openSync(file, 1);
    const first = reader.dataBlockHandles()[0];
    reader.close();
    const trailerAt = first.offset + first.size;
    expect(original[trailerAt]).toBe(1); // the block is LZ4-compressed

    const forge = (prefix: number, claimed: number) => {
      const bytes = Buffer.from(original);
      const payload = bytes.subarray(first.offset, first.offset + first.size);
      payload.writeUInt32LE(prefix, 0);
      encodeBlockTrailer(payload, 1, claimed, bytes.subarray(trailerAt, trailerAt + BLOCK_TRAILER_BYTES));
      fs.writeFileSync(file, bytes);
    };
    const before = process.memoryUsage();
    const cases: [number, number][] = [
      [0xffff_fff0, 0xffff_fff0], // both claim ~4 GiB: over BLOCK_BYTES_MAX
      [200 * 1024 * 1024, 200 * 1024 * 1024], // both claim 200 MiB from a few hundred bytes
      [0x7fff_ffff, original.readUInt32LE(trailerAt + 1)], // prefix disagrees with the trailer
    ];
    for (const [prefix, claimed] of cases) {
      forge(prefix, claimed);
      const r = TableReader.openSync(file, 1);
      expectCorruption(() => r.getSync(model[0].userKey, Number.MAX_SAFE_INTEGER), file, first.offset);
      r.close();
    }
    const after = process.memoryUsage();
    expect(after.arrayBuffers - before.arrayBuffers).toBeLessThan(64 * 1024 * 1024);
    expect(after.rss - before.rss).toBeLessThan(128 * 1024 * 1024);
  });

  test('bytes after a valid table or a wrong magic are rejected', () => {
    const file = path.join(dir, 'magic.sst');
    const original = build(file, false);
    fs.writeFileSync(file, Buffer.concat([original, Buffer.from('trailing garbage')]));
    expectCorruption(() => TableReader.openSync(file, 1), file);
    fs.writeFileSync(file, Buffer.alloc(4096, 0));
    expectCorruption(() => TableReader.openSync(file, 1), file, 4096 - TABLE_MAGIC.length);
  });
});
