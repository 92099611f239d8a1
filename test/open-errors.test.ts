// Bad state at open: each case gets a clear LEVEL_* code (as the cause of
// LEVEL_DATABASE_NOT_OPEN, the way abstract-level reports open failures) and modifies nothing.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { StemeDB } from '../dist/index.js';
import { encodeEdit } from '../dist/log/manifest.js';
import { recordBytes, writeRecord } from '../dist/log/record.js';
import { tempDir } from './helpers/tmp.js';

const root = tempDir();
let n = 0;

/** Every file under dir with a hash of its contents: "modifies nothing" means this is unchanged. */
function snapshotTree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) { out[path.relative(dir, p) + '/'] = 'dir'; walk(p); }
      else out[path.relative(dir, p)] = createHash('sha1').update(fs.readFileSync(p)).digest('hex');
    }
  };
  walk(dir);
  return out;
}

async function populated(): Promise<string> {
  const location = path.join(root, `db${n++}`);
  const db = new StemeDB(location);
  await db.open();
  await db.batch(Array.from({ length: 100 }, (_, i) => ({ type: 'put' as const, key: `k${i}`, value: `v${i}` })));
  await db.flush();
  await db.put('in-wal', 'yes');
  await db.close();
  return location;
}

async function openError(location: string): Promise<any> {
  const db = new StemeDB(location);
  const err = await db.open().then(() => undefined, (e) => e);
  expect(err, 'open should have failed').toBeDefined();
  expect(err.code).toBe('LEVEL_DATABASE_NOT_OPEN');
  return err.cause;
}

describe('bad state at open', () => {
  it('the location is a regular file', async () => {
    const file = path.join(root, 'a-file');
    fs.writeFileSync(file, 'not a database');
    const cause = await openError(file);
    expect(cause.code).toBe('LEVEL_IO_ERROR');
    expect(cause.cause?.code).toBe('ENOTDIR');
    expect(fs.readFileSync(file, 'utf8')).toBe('not a database');
  });

  it('the MANIFEST comes from a newer format version', async () => {
    const location = await populated();
    const kv = path.join(location, 'kv');
    const manifest = fs.readdirSync(kv).find((f) => f.startsWith('MANIFEST-'))!;
    const payload = encodeEdit({ formatVersion: 99, logNumber: 1, nextFileNumber: 10, lastSequence: 5 });
    const record = new Uint8Array(recordBytes(payload.length));
    writeRecord(record, 0, 2, payload);
    fs.writeFileSync(path.join(kv, manifest), record);
    const before = snapshotTree(location);
    const cause = await openError(location);
    expect(cause.code).toBe('LEVEL_NOT_SUPPORTED');
    expect(cause.message).toMatch(/format version 99/);
    expect(snapshotTree(location)).toEqual(before);
  });

  it('CURRENT is missing while the database holds data: refused, nothing deleted', async () => {
    const location = await populated();
    fs.rmSync(path.join(location, 'kv', 'CURRENT'));
    const before = snapshotTree(location);
    const cause = await openError(location);
    expect(cause.code).toBe('LEVEL_CORRUPTION');
    expect(cause.message).toMatch(/CURRENT is missing/);
    expect(snapshotTree(location)).toEqual(before);
    // repair brings it back with every record.
    await StemeDB.repair(location);
    const db = new StemeDB(location);
    await db.open();
    expect(await db.get('k42')).toBe('v42');
    expect(await db.get('in-wal')).toBe('yes');
    await db.close();
  });

  it('CURRENT points at a missing MANIFEST', async () => {
    const location = await populated();
    fs.writeFileSync(path.join(location, 'kv', 'CURRENT'), 'MANIFEST-999999\n');
    const before = snapshotTree(location);
    const cause = await openError(location);
    expect(cause.code).toBe('LEVEL_CORRUPTION');
    expect(cause.message).toMatch(/MANIFEST-999999/);
    expect(snapshotTree(location)).toEqual(before);
  });

  // Root ignores permission bits, so as root the directory is made unwritable by remounting a
  // small tmpfs read-only; otherwise by chmod.
  it('the directory is not writable', async () => {
    const { execFileSync } = await import('node:child_process');
    const isRoot = process.getuid?.() === 0;
    const mountPoint = path.join(root, 'readonly');
    fs.mkdirSync(mountPoint);
    if (isRoot) execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', mountPoint]);
    const location = path.join(mountPoint, 'db');
    try {
      const db = new StemeDB(location);
      await db.open();
      await db.put('k', 'v');
      await db.close();
      if (isRoot) execFileSync('mount', ['-o', 'remount,ro', mountPoint]);
      else fs.chmodSync(location, 0o555);
      const before = snapshotTree(location);
      const cause = await openError(location);
      expect(cause.code).toBe('LEVEL_IO_ERROR');
      expect(['EROFS', 'EACCES']).toContain(cause.cause?.code);
      expect(snapshotTree(location)).toEqual(before);
    } finally {
      if (isRoot) execFileSync('umount', ['-l', mountPoint]);
      else fs.chmodSync(location, 0o755);
    }
  });
});
