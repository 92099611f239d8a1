// Threads: a pool worker (StemeDB.repair) or the CLI process. Rebuilds a damaged database:
// the runbooks' "rebuild from WAL".
//
// Steps (the database must be closed; the LOCK is taken for the duration):
//   1. Verify every SST in kv/. Tables that fail are moved to <location>/lost/, whole.
//   2. Merge every intact table into new level-1 files, exactly as a compaction does: the
//      merge orders versions by sequence number, so the result is correct whatever levels
//      the tables came from. The inputs are then deleted.
//   3. Scan every WAL segment. A segment with a bad record keeps its valid prefix; the rest
//      is moved to lost/ (records after damage cannot be trusted to be whole).
//   4. Write a fresh MANIFEST naming the new tables, with logNumber at the oldest segment,
//      so the next open replays every surviving WAL record on top of the tables. Point
//      CURRENT at it (atomically) and delete the old MANIFESTs.
// Nothing that was readable is dropped; everything set aside is listed in the report.

import * as path from 'node:path';
import { threadId } from 'node:worker_threads';
import { fileSystem, writeAllSync } from '../common/fs.js';
import { kvDir, segmentName, segmentNumberOf, tableNumberOf, tablePath, walDir } from '../common/files.js';
import { emptyVersionState, ManifestWriter } from '../log/manifest.js';
import { scanRecords } from '../log/record.js';
import { readBatchHeader } from '../log/batch.js';
import { TableReader } from '../sst/table-reader.js';
import { compact } from '../workers/compaction.js';
import { acquireLock, releaseLock } from '../workers/wal/lock.js';

export interface RepairReport {
  tablesKept: number;
  tablesLost: { file: string; movedTo: string; what: string }[];
  entriesRecovered: number;
  tablesWritten: number;
  walRecordsKept: number;
  walBytesLost: { file: string; offset: number; bytes: number; movedTo: string }[];
  manifest: string;
}

export function repairDatabase(location: string): RepairReport {
  const fs = fileSystem();
  const kv = kvDir(location);
  const wal = walDir(location);
  const lost = path.join(location, 'lost');
  const locks = new Set<string>();
  acquireLock(location, threadId, locks);
  try {
    fs.mkdirSync(kv);
    fs.mkdirSync(wal);
    const report: RepairReport = { tablesKept: 0, tablesLost: [], entriesRecovered: 0, tablesWritten: 0, walRecordsKept: 0, walBytesLost: [], manifest: '' };
    const names = fs.readdirSync(kv);
    const tableNumbers = names.map(tableNumberOf).filter((n): n is number => n !== undefined).sort((a, b) => a - b);
    const manifestNumbers = names.map((f) => /^MANIFEST-(\d+)$/.exec(f)).filter((m): m is RegExpExecArray => m !== null).map((m) => Number(m[1]));
    const setAside = (file: string): string => {
      fs.mkdirSync(lost);
      const to = path.join(lost, path.basename(file));
      fs.renameSync(file, to);
      return to;
    };

    // 1. Verify tables.
    const good: number[] = [];
    let lastSequence = 0;
    for (const n of tableNumbers) {
      const file = tablePath(location, n);
      let reader: TableReader | undefined;
      let what: string | undefined;
      try {
        reader = TableReader.openSync(file, n);
        const v = reader.verifySync();
        if (!v.ok) what = v.problems.map((p) => `offset ${p.offset}: ${p.what}`).join('; ');
      } catch (e) {
        what = String((e as Error).message);
      } finally {
        reader?.close();
      }
      if (what === undefined) good.push(n);
      else report.tablesLost.push({ file, movedTo: setAside(file), what });
    }
    report.tablesKept = good.length;

    // 2. Merge intact tables into one sorted level-1 run.
    let nextFileNumber = Math.max(0, ...tableNumbers) + 1;
    const state = emptyVersionState();
    if (good.length > 0) {
      const outputs = Array.from({ length: good.length * 2 + 16 }, () => nextFileNumber++);
      const result = compact({
        type: 'compact', location, inputs: good.map((fileNumber) => ({ level: 0, fileNumber })), outputLevel: 1,
        outputFileNumbers: outputs, targetFileBytes: 2 * 1024 * 1024, deeperRanges: [], blockSize: 4096, compression: true,
      });
      for (const o of result.outputs) {
        state.levels[1].push({ level: 1, ...o });
        lastSequence = Math.max(lastSequence, o.largestSequence);
      }
      report.entriesRecovered = result.entriesOut;
      report.tablesWritten = result.outputs.length;
      for (const n of good) fs.unlinkSync(tablePath(location, n));
    }

    // 3. Cut WAL segments at their first bad record.
    const segments = fs.readdirSync(wal).map(segmentNumberOf).filter((n): n is number => n !== undefined).sort((a, b) => a - b);
    for (const n of segments) {
      const file = path.join(wal, segmentName(n));
      const data = fs.readFileSync(file);
      const result = scanRecords(data, (_type, payload) => {
        report.walRecordsKept++;
        const h = readBatchHeader(payload);
        if (h && h.count > 0) lastSequence = Math.max(lastSequence, h.sequence + h.count - 1);
      });
      if (result.problem) {
        fs.mkdirSync(lost);
        const movedTo = path.join(lost, `${segmentName(n)}.from-${result.validBytes}`);
        const tailFd = fs.openSync(movedTo, 'w');
        try { writeAllSync(tailFd, data.subarray(result.validBytes), 0); fs.fdatasyncSync(tailFd); } finally { fs.closeSync(tailFd); }
        const fd = fs.openSync(file, 'r+');
        try { fs.ftruncateSync(fd, result.validBytes); fs.fdatasyncSync(fd); } finally { fs.closeSync(fd); }
        report.walBytesLost.push({ file, offset: result.validBytes, bytes: data.length - result.validBytes, movedTo });
      }
    }

    // 4. A fresh MANIFEST, then remove the old ones.
    state.logNumber = segments.length > 0 ? segments[0] : 0;
    state.nextFileNumber = nextFileNumber;
    state.lastSequence = lastSequence;
    const manifestNumber = Math.max(0, ...manifestNumbers) + 1;
    const writer = ManifestWriter.create(kv, manifestNumber, state);
    writer.close();
    report.manifest = writer.name;
    for (const m of manifestNumbers) fs.unlinkSync(path.join(kv, `MANIFEST-${String(m).padStart(6, '0')}`));
    fs.syncDirSync(kv);
    if (fs.existsSync(lost)) fs.syncDirSync(lost);
    return report;
  } finally {
    releaseLock(location, locks);
  }
}
