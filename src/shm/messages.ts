// Threads: all. THE one definition of every message shape that crosses a thread boundary.
// Per-write traffic never uses messages: it goes through the write ring (ring.ts). Messages
// carry only rare control events: open, close, MANIFEST edits, memtable rotation, failures.

import type { WireError } from '../common/errors.js';
import type { VersionEdit, VersionState } from '../log/manifest.js';
import type { TableProperties } from '../sst/table-builder.js';

export interface DatabaseOptions {
  createIfMissing: boolean;
  errorIfExists: boolean;
  writeBufferSize: number;
  immutableMemtablesMax: number;
  /** The MANIFEST is rewritten as one snapshot edit once it grows past this. */
  manifestBytesMax: number;
}

export interface MemtableHandle {
  generation: number;
  buffer: SharedArrayBuffer;
  /** The oldest WAL segment holding data of this memtable. */
  firstSegment: number;
  immutable: boolean;
}

/** Caller's thread → WAL worker, through a MessagePort the worker polls synchronously. */
export type WalRequest =
  | { type: 'open'; requestId: number; dbId: number; location: string; options: DatabaseOptions; ring: SharedArrayBuffer; control: SharedArrayBuffer; ownerThreadId: number }
  | { type: 'edit'; requestId: number; dbId: number; edit: VersionEdit }
  | { type: 'close'; requestId: number; dbId: number }
  | { type: 'delete'; requestId: number; dbId: number; fileNumbers: number[] }
  /** No reply: the caller's thread has stopped reading these memtables (WalDatabase.releaseMemtables). */
  | { type: 'release'; dbId: number; generations: number[] }
  | { type: 'shutdown' };

/** WAL worker → caller's thread, through the worker's parent port. */
export type WalReply =
  | { type: 'opened'; requestId: number; dbId: number; state: VersionState; memtables: MemtableHandle[]; lastSequence: number; recoveredBatches: number }
  | { type: 'done'; requestId: number }
  | { type: 'error'; requestId: number; error: WireError }
  | { type: 'rotated'; dbId: number; memtable: MemtableHandle }
  | { type: 'failed'; dbId: number; error: WireError };

/** Caller's thread → flush/compaction pool (piscina task). */
export interface FlushTask {
  type: 'flush';
  location: string;
  fileNumber: number;
  memtable: SharedArrayBuffer;
  blockSize: number;
  compression: boolean;
  /**
   * The database's shared block cache (SharedBlockCache.buffer, layout.ts section 5), to warm
   * with every data block written; absent when the database has no tier 2 or
   * prepopulateBlockCache is off. Its keys are (fileNumber, block offset) of this database.
   */
  blockCache?: SharedArrayBuffer;
}

/** Caller's thread → pool: merge input files into new files at outputLevel. */
export interface CompactionTask {
  type: 'compact';
  location: string;
  /** Input files, newest data first is not required: the merge orders by internal key. */
  inputs: { level: number; fileNumber: number }[];
  outputLevel: number;
  /** File numbers reserved for outputs, used in order. */
  outputFileNumbers: number[];
  targetFileBytes: number;
  /**
   * User-key ranges [smallest, largest] of every file in levels below outputLevel. A tombstone
   * can be dropped only if no such range contains its key (nothing older can resurface).
   */
  deeperRanges: { smallest: Uint8Array; largest: Uint8Array }[];
  blockSize: number;
  compression: boolean;
  /** Test hook: sleep this long per output file, to make compaction slow on purpose. */
  throttleMs?: number;
}

export interface CompactionResult {
  outputs: FlushResult[];
  bytesRead: number;
  bytesWritten: number;
  entriesIn: number;
  entriesOut: number;
}

/** Caller's thread → pool: offline tooling over a closed database. */
export interface ToolTask {
  type: 'verify' | 'repair';
  location: string;
}

/** A table written by a flush or compaction: the builder's properties plus its file number. */
export interface FlushResult extends TableProperties {
  fileNumber: number;
}
