// Threads: the caller's (main) thread. Chooses the next compaction, by score, as LevelDB and
// RocksDB do.
//
//   score(L0) = L0 file count / level0CompactionTrigger   (L0 files overlap: count matters)
//   score(Ln) = bytes(Ln) / maxBytes(n), maxBytes(1) = levelBaseBytes, ×levelSizeMultiplier per level
//
// The level with the highest score >= 1 is compacted into the next one:
//   - L0: every L0 file (they overlap each other, so a subset could leave an older version
//     of a key in L0 above a newer one in L1), plus every L1 file overlapping them.
//   - Ln: one file, taken round-robin after the key where the last compaction of Ln ended,
//     plus every L(n+1) file overlapping it. A file with no overlap below is moved by a
//     MANIFEST edit alone (a trivial move), with no rewrite.

import { compareBytes, TRAILER_BYTES } from '../common/keys.js';
import { LEVEL_COUNT, type FileMeta } from '../log/manifest.js';

export interface CompactionOptions {
  level0CompactionTrigger: number;
  levelBaseBytes: number;
  levelSizeMultiplier: number;
}

export interface CompactionPlan {
  level: number;
  outputLevel: number;
  inputs: FileMeta[];
  /** Inputs from the output level. */
  overlapping: FileMeta[];
  trivialMove: boolean;
}

const userKey = (ik: Uint8Array) => ik.subarray(0, ik.length - TRAILER_BYTES);

export function maxBytesForLevel(level: number, o: CompactionOptions): number {
  return o.levelBaseBytes * Math.pow(o.levelSizeMultiplier, Math.max(0, level - 1));
}

export function levelBytes(files: readonly FileMeta[]): number {
  let n = 0;
  for (const f of files) n += f.fileSize;
  return n;
}

export function keyRange(files: readonly FileMeta[]): { smallest: Uint8Array; largest: Uint8Array } | undefined {
  if (files.length === 0) return undefined;
  let smallest = userKey(files[0].smallestKey);
  let largest = userKey(files[0].largestKey);
  for (const f of files) {
    if (compareBytes(userKey(f.smallestKey), smallest) < 0) smallest = userKey(f.smallestKey);
    if (compareBytes(userKey(f.largestKey), largest) > 0) largest = userKey(f.largestKey);
  }
  return { smallest, largest };
}

/** Files in `files` whose user-key range intersects [smallest, largest] (either bound open when undefined). */
export function overlappingFiles(files: readonly FileMeta[], smallest: Uint8Array | undefined, largest: Uint8Array | undefined): FileMeta[] {
  return files.filter((f) => (largest === undefined || compareBytes(userKey(f.smallestKey), largest) <= 0)
    && (smallest === undefined || compareBytes(userKey(f.largestKey), smallest) >= 0));
}

export function scores(levels: readonly (readonly FileMeta[])[], o: CompactionOptions): number[] {
  const out = [levels[0].length / o.level0CompactionTrigger];
  for (let level = 1; level < LEVEL_COUNT - 1; level++) out.push(levelBytes(levels[level]) / maxBytesForLevel(level, o));
  return out;
}

/** Bytes that compaction must still rewrite to bring every level under its target (an estimate). */
export function pendingCompactionBytes(levels: readonly (readonly FileMeta[])[], o: CompactionOptions): number {
  let pending = levels[0].length >= o.level0CompactionTrigger ? levelBytes(levels[0]) : 0;
  for (let level = 1; level < LEVEL_COUNT - 1; level++) pending += Math.max(0, levelBytes(levels[level]) - maxBytesForLevel(level, o));
  return pending;
}

export function pickCompaction(levels: readonly (readonly FileMeta[])[], o: CompactionOptions, cursors: (Uint8Array | undefined)[]): CompactionPlan | undefined {
  const s = scores(levels, o);
  let best = -1;
  for (let level = 0; level < s.length; level++) if (s[level] >= 1 && (best < 0 || s[level] > s[best])) best = level;
  if (best < 0) return undefined;
  let inputs: FileMeta[];
  if (best === 0) {
    inputs = [...levels[0]];
  } else {
    const files = levels[best];
    const cursor = cursors[best];
    const next = cursor ? files.find((f) => compareBytes(userKey(f.smallestKey), cursor) > 0) : undefined;
    inputs = [next ?? files[0]];
  }
  const range = keyRange(inputs)!;
  const overlapping = overlappingFiles(levels[best + 1], range.smallest, range.largest);
  return { level: best, outputLevel: best + 1, inputs, overlapping, trivialMove: best > 0 && overlapping.length === 0 && inputs.length === 1 };
}
