// Threads: WAL worker (at open), repair tooling. Replays WAL segments into memtables.
//
// Steps:
//   1. List wal/segment.*.wal numbered >= the MANIFEST's logNumber, oldest first. Older ones
//      are already covered by SSTs; they are deleted.
//   2. Scan each segment's records. A bad record at the tail of the NEWEST segment was a torn
//      write that was never acknowledged as synced: it and everything after it is dropped and
//      the file is truncated. A bad record anywhere else fails the open with LEVEL_CORRUPTION
//      naming the file and offset.
//   3. Insert every batch into memtables, starting a new memtable when one fills. All but the
//      last become immutable and must be flushed before their segments can be deleted.

import * as path from 'node:path';
import { CorruptionError } from '../../common/errors.js';
import { fileSystem } from '../../common/fs.js';
import { segmentName, segmentNumberOf, walDir } from '../../common/files.js';
import { forEachBatchOp, readBatchHeader } from '../../log/batch.js';
import { RecordType, scanRecords } from '../../log/record.js';
import { Memtable } from '../../shm/memtable.js';

export interface RecoveredMemtable {
  memtable: Memtable;
  firstSegment: number;
}

export interface RecoveryResult {
  memtables: RecoveredMemtable[];
  lastSequence: number;
  batches: number;
  newestSegment: number;
}

export function listSegments(location: string): number[] {
  const fs = fileSystem();
  const dir = walDir(location);
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).map(segmentNumberOf).filter((n): n is number => n !== undefined).sort((a, b) => a - b);
}

/** Bytes one batch needs in a memtable, at most. */
export function batchMemtableBytes(batch: Uint8Array): number {
  let need = 0;
  forEachBatchOp(batch, (_kind, key, value) => { need += Memtable.entryBytesMax(key.length, value.length); });
  return need;
}

export function applyBatch(memtable: Memtable, batch: Uint8Array): void {
  const ok = forEachBatchOp(batch, (kind, key, value, sequence) => {
    if (!memtable.add(sequence, kind, key, value)) throw new Error('stemedb assertion failed: memtable sized for batch has no room');
  });
  if (!ok) throw new Error('stemedb assertion failed: malformed batch reached apply');
}

export function recoverWal(location: string, logNumber: number, writeBufferSize: number, lastSequenceIn: number): RecoveryResult {
  const fs = fileSystem();
  const segments = listSegments(location);
  const live = segments.filter((n) => n >= logNumber);
  for (const n of segments) if (n < logNumber) fs.unlinkSync(path.join(walDir(location), segmentName(n)));
  const memtables: RecoveredMemtable[] = [];
  let lastSequence = lastSequenceIn;
  let batches = 0;
  let current: RecoveredMemtable | undefined;
  for (let i = 0; i < live.length; i++) {
    const number = live[i];
    const file = path.join(walDir(location), segmentName(number));
    const data = fs.readFileSync(file);
    let bad: CorruptionError | undefined;
    const result = scanRecords(data, (type, payload, offset) => {
      if (bad) return;
      const header = readBatchHeader(payload);
      if (type !== RecordType.Batch || !header) { bad = new CorruptionError(file, offset, 'WAL record is not a batch'); return; }
      // The checksum matched, so a batch that does not parse means a bug or a checksum collision.
      if (!forEachBatchOp(payload, () => {})) { bad = new CorruptionError(file, offset, 'WAL batch does not parse'); return; }
      const need = batchMemtableBytes(payload);
      if (!current || current.memtable.usedBytes + need > current.memtable.capacityBytes) {
        if (current) current.memtable.markImmutable();
        current = { memtable: Memtable.create(Math.max(writeBufferSize, need)), firstSegment: number };
        memtables.push(current);
      }
      applyBatch(current.memtable, payload);
      batches++;
      if (header.count > 0) lastSequence = Math.max(lastSequence, header.sequence + header.count - 1);
    });
    if (bad) throw bad;
    // Replayed batches become visible again, and later sync writes may depend on them: make
    // the segment durable now, because new writes go to a new segment that a later fdatasync
    // covers alone (otherwise a power cut could keep a later sync write and lose these).
    if (!result.problem) syncFile(file);
    if (result.problem) {
      const newest = i === live.length - 1;
      if (!(newest && result.problem.atTail)) throw new CorruptionError(file, result.problem.offset, result.problem.what);
      // Cut the torn tail so that, once newer segments exist, this one reads clean.
      const fd = fs.openSync(file, 'r+');
      try {
        fs.ftruncateSync(fd, result.validBytes);
        fs.fdatasyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    }
  }
  return { memtables, lastSequence, batches, newestSegment: live.length ? live[live.length - 1] : Math.max(0, logNumber - 1) };
}

function syncFile(file: string): void {
  const fs = fileSystem();
  const fd = fs.openSync(file, 'r+');
  try {
    fs.fdatasyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
