// Threads: WAL worker (the only writer of a database's MANIFEST), and any thread that
// verifies or repairs. See docs/format-manifest.md.
//
// The MANIFEST is a log of version edits in the record framing of record.ts. Replaying every
// edit in order yields the current VersionState: which SST files make up each level, the
// oldest WAL segment still needed, and the counters.
//
//   kv/CURRENT             := "MANIFEST-" number(6+ digits) "\n"
//   kv/MANIFEST-NNNNNN     := record(type = VersionEdit)*
//   edit  := field*
//   field := tag: u8 | body
//     tag 1 FormatVersion   body := varint                  (first edit of every MANIFEST)
//     tag 2 LogNumber       body := varint                  (oldest WAL segment not yet in SSTs)
//     tag 3 NextFileNumber  body := varint
//     tag 4 LastSequence    body := varint
//     tag 5 AddFile         body := level: u8 | fileNumber: varint | fileSize: varint
//                                   | smallestSequence: varint | largestSequence: varint
//                                   | smallestKeyBytes: varint | smallestKey | largestKeyBytes: varint | largestKey
//     tag 6 DeleteFile      body := level: u8 | fileNumber: varint
//
// CURRENT is replaced atomically: write CURRENT.tmp, fsync it, rename it over CURRENT, fsync kv/.
// DO NOT RENUMBER tags or ManifestFormat values: they are on disk.

import * as path from 'node:path';
import { CorruptionError, StemeError } from '../common/errors.js';
import { fileSystem, writeAllSync } from '../common/fs.js';
import { getVarint, putVarint, varintLength } from '../common/varint.js';
import { RECORD_PAYLOAD_BYTES_MAX, RecordType, recordBytes, scanRecords, writeRecord } from './record.js';

/** Append-only list of MANIFEST format versions. Never renumber. */
export const enum ManifestFormat {
  /** 1: the first format: tags 1-6. */
  V1 = 1,
}
export const MANIFEST_FORMAT_CURRENT = ManifestFormat.V1;
export const LEVEL_COUNT = 7;

const enum Tag {
  FormatVersion = 1,
  LogNumber = 2,
  NextFileNumber = 3,
  LastSequence = 4,
  AddFile = 5,
  DeleteFile = 6,
}

export interface FileMeta {
  level: number;
  fileNumber: number;
  fileSize: number;
  smallestSequence: number;
  largestSequence: number;
  /** Internal keys (user key + trailer). */
  smallestKey: Uint8Array;
  largestKey: Uint8Array;
}

export interface VersionEdit {
  formatVersion?: number;
  logNumber?: number;
  nextFileNumber?: number;
  lastSequence?: number;
  added?: FileMeta[];
  deleted?: { level: number; fileNumber: number }[];
}

export interface VersionState {
  logNumber: number;
  nextFileNumber: number;
  lastSequence: number;
  levels: FileMeta[][];
}

export function emptyVersionState(): VersionState {
  return { logNumber: 0, nextFileNumber: 1, lastSequence: 0, levels: Array.from({ length: LEVEL_COUNT }, () => []) };
}

export function encodeEdit(edit: VersionEdit): Uint8Array {
  let n = 0;
  const num = (v: number) => { n += 1 + varintLength(v); };
  if (edit.formatVersion !== undefined) num(edit.formatVersion);
  if (edit.logNumber !== undefined) num(edit.logNumber);
  if (edit.nextFileNumber !== undefined) num(edit.nextFileNumber);
  if (edit.lastSequence !== undefined) num(edit.lastSequence);
  for (const f of edit.added ?? []) {
    n += 2 + varintLength(f.fileNumber) + varintLength(f.fileSize) + varintLength(f.smallestSequence) + varintLength(f.largestSequence)
      + varintLength(f.smallestKey.length) + f.smallestKey.length + varintLength(f.largestKey.length) + f.largestKey.length;
  }
  for (const d of edit.deleted ?? []) n += 2 + varintLength(d.fileNumber);
  const out = new Uint8Array(n);
  let at = 0;
  const put = (tag: Tag, v: number) => { out[at++] = tag; at = putVarint(out, at, v); };
  if (edit.formatVersion !== undefined) put(Tag.FormatVersion, edit.formatVersion);
  if (edit.logNumber !== undefined) put(Tag.LogNumber, edit.logNumber);
  if (edit.nextFileNumber !== undefined) put(Tag.NextFileNumber, edit.nextFileNumber);
  if (edit.lastSequence !== undefined) put(Tag.LastSequence, edit.lastSequence);
  for (const f of edit.added ?? []) {
    out[at++] = Tag.AddFile;
    out[at++] = f.level;
    at = putVarint(out, at, f.fileNumber);
    at = putVarint(out, at, f.fileSize);
    at = putVarint(out, at, f.smallestSequence);
    at = putVarint(out, at, f.largestSequence);
    at = putVarint(out, at, f.smallestKey.length); out.set(f.smallestKey, at); at += f.smallestKey.length;
    at = putVarint(out, at, f.largestKey.length); out.set(f.largestKey, at); at += f.largestKey.length;
  }
  for (const d of edit.deleted ?? []) {
    out[at++] = Tag.DeleteFile;
    out[at++] = d.level;
    at = putVarint(out, at, d.fileNumber);
  }
  return out;
}

/** Returns undefined when the edit is malformed. */
export function decodeEdit(data: Uint8Array): VersionEdit | undefined {
  const edit: VersionEdit = {};
  let at = 0;
  const num = (): number => {
    const [v, next] = getVarint(data, at);
    if (next < 0) throw new RangeError('bad varint');
    at = next;
    return v;
  };
  const bytes = (): Uint8Array => {
    const len = num();
    if (at + len > data.length) throw new RangeError('bytes past end');
    const out = data.slice(at, at + len);
    at += len;
    return out;
  };
  try {
    while (at < data.length) {
      const tag = data[at++];
      switch (tag) {
        case Tag.FormatVersion: edit.formatVersion = num(); break;
        case Tag.LogNumber: edit.logNumber = num(); break;
        case Tag.NextFileNumber: edit.nextFileNumber = num(); break;
        case Tag.LastSequence: edit.lastSequence = num(); break;
        case Tag.AddFile: {
          const level = data[at++];
          if (level >= LEVEL_COUNT) return undefined;
          const fileNumber = num(), fileSize = num(), smallestSequence = num(), largestSequence = num();
          const smallestKey = bytes(), largestKey = bytes();
          (edit.added ??= []).push({ level, fileNumber, fileSize, smallestSequence, largestSequence, smallestKey, largestKey });
          break;
        }
        case Tag.DeleteFile: {
          const level = data[at++];
          if (level >= LEVEL_COUNT) return undefined;
          (edit.deleted ??= []).push({ level, fileNumber: num() });
          break;
        }
        default: return undefined;
      }
    }
  } catch {
    return undefined;
  }
  return edit;
}

/** Applies an edit in place. Level 0 keeps files newest-first; deeper levels are sorted by key by the reader. */
export function applyEdit(state: VersionState, edit: VersionEdit): void {
  if (edit.logNumber !== undefined) state.logNumber = edit.logNumber;
  if (edit.nextFileNumber !== undefined) state.nextFileNumber = edit.nextFileNumber;
  if (edit.lastSequence !== undefined) state.lastSequence = edit.lastSequence;
  for (const d of edit.deleted ?? []) {
    state.levels[d.level] = state.levels[d.level].filter((f) => f.fileNumber !== d.fileNumber);
  }
  for (const f of edit.added ?? []) {
    state.levels[f.level].push(f);
    if (f.level === 0) state.levels[0].sort((a, b) => b.largestSequence - a.largestSequence || b.fileNumber - a.fileNumber);
  }
}

export function snapshotEdit(state: VersionState): VersionEdit {
  return {
    formatVersion: MANIFEST_FORMAT_CURRENT,
    logNumber: state.logNumber,
    nextFileNumber: state.nextFileNumber,
    lastSequence: state.lastSequence,
    added: state.levels.flat(),
  };
}

export function manifestName(number: number): string {
  return `MANIFEST-${String(number).padStart(6, '0')}`;
}

export function readCurrent(kvDir: string): string | undefined {
  const fs = fileSystem();
  const current = path.join(kvDir, 'CURRENT');
  if (!fs.existsSync(current)) return undefined;
  const name = fs.readFileSync(current).toString('utf8');
  if (!/^MANIFEST-\d{6,}\n$/.test(name)) throw new CorruptionError(current, 0, 'CURRENT does not name a MANIFEST');
  return name.trim();
}

/** Loads the state named by CURRENT. Throws CorruptionError or StemeError(LEVEL_NOT_SUPPORTED). */
export function loadManifest(kvDir: string, manifest: string): { state: VersionState; bytes: number } {
  const fs = fileSystem();
  const file = path.join(kvDir, manifest);
  if (!fs.existsSync(file)) throw new CorruptionError(path.join(kvDir, 'CURRENT'), 0, `CURRENT names ${manifest}, which does not exist`);
  const data = fs.readFileSync(file);
  const state = emptyVersionState();
  let first = true;
  let bad: CorruptionError | StemeError | undefined;
  const result = scanRecords(data, (type, payload, offset) => {
    if (bad) return;
    const edit = type === RecordType.VersionEdit ? decodeEdit(payload) : undefined;
    if (!edit) { bad = new CorruptionError(file, offset, 'malformed version edit'); return; }
    if (first) {
      if (edit.formatVersion === undefined) { bad = new CorruptionError(file, offset, 'first edit lacks a format version'); return; }
      if (edit.formatVersion > MANIFEST_FORMAT_CURRENT) {
        bad = new StemeError('LEVEL_NOT_SUPPORTED', `${file} has format version ${edit.formatVersion}; this StemeDB reads up to ${MANIFEST_FORMAT_CURRENT}`);
        return;
      }
      first = false;
    }
    applyEdit(state, edit);
  });
  if (bad) throw bad;
  // Every MANIFEST append is fdatasynced before it is acted on, so a torn tail is an edit that
  // never took effect: the files it named are orphans that the next open removes.
  if (result.problem && !result.problem.atTail) throw new CorruptionError(file, result.problem.offset, result.problem.what);
  if (first) throw new CorruptionError(file, 0, 'MANIFEST holds no edits');
  return { state, bytes: result.validBytes };
}

/** An open MANIFEST that accepts appended edits. Every append is fdatasynced before it returns. */
export class ManifestWriter {
  private constructor(readonly kvDir: string, readonly name: string, private fd: number, private size: number) {}

  /** Writes a fresh MANIFEST holding the full state, then points CURRENT at it. */
  static create(kvDir: string, number: number, state: VersionState): ManifestWriter {
    const fs = fileSystem();
    const name = manifestName(number);
    const file = path.join(kvDir, name);
    const fd = fs.openSync(file, 'w');
    const writer = new ManifestWriter(kvDir, name, fd, 0);
    try {
      writer.append(snapshotEdit(state));
      setCurrent(kvDir, name);
    } catch (e) {
      writer.close();
      try { fs.unlinkSync(file); } catch { /* best effort: the orphan is removed at next open */ }
      throw e;
    }
    return writer;
  }

  /** Reopens an existing MANIFEST for appending, cutting any torn tail first. */
  static reopen(kvDir: string, name: string, validBytes: number): ManifestWriter {
    const fs = fileSystem();
    const fd = fs.openSync(path.join(kvDir, name), 'r+');
    try {
      if (fs.fstatSizeSync(fd) > validBytes) {
        fs.ftruncateSync(fd, validBytes);
        fs.fdatasyncSync(fd);
      }
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
    return new ManifestWriter(kvDir, name, fd, validBytes);
  }

  get bytes(): number {
    return this.size;
  }

  append(edit: VersionEdit): void {
    const payload = encodeEdit(edit);
    if (payload.length > RECORD_PAYLOAD_BYTES_MAX) throw new Error('stemedb assertion failed: version edit exceeds the record payload limit');
    const out = new Uint8Array(recordBytes(payload.length));
    writeRecord(out, 0, RecordType.VersionEdit, payload);
    writeAllSync(this.fd, out, this.size);
    fileSystem().fdatasyncSync(this.fd);
    this.size += out.length;
  }

  close(): void {
    if (this.fd >= 0) {
      fileSystem().closeSync(this.fd);
      this.fd = -1;
    }
  }
}

/** Atomically points CURRENT at manifest: temp file, fsync, rename, fsync of the directory. */
export function setCurrent(kvDir: string, manifest: string): void {
  const fs = fileSystem();
  const tmp = path.join(kvDir, 'CURRENT.tmp');
  const fd = fs.openSync(tmp, 'w');
  try {
    writeAllSync(fd, Buffer.from(`${manifest}\n`), 0);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, path.join(kvDir, 'CURRENT'));
  fs.syncDirSync(kvDir);
}
