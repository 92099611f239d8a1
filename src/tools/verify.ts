// Threads: a pool worker (StemeDB.verify) or the CLI process. Reads every file of a database
// and reports each bad block or record with its file and byte offset. Read-only.
//
// Checked:
//   1. kv/CURRENT names a MANIFEST, and every MANIFEST record has a valid checksum and parses
//      (a torn last edit is reported as 'torn tail').
//   2. Every SST the MANIFEST names exists and every one of its blocks (data, filter, index,
//      footer) verifies; so does every other *.sst in kv/ (orphans are reported as such).
//   3. Every WAL segment's records verify. A bad tail is reported too, as 'torn tail': after a
//      crash it is expected and harmless, but it is indistinguishable from a damaged length field.

import * as path from 'node:path';
import { CorruptionError } from '../common/errors.js';
import { fileSystem } from '../common/fs.js';
import { kvDir, segmentNumberOf, tableNumberOf, walDir } from '../common/files.js';
import { loadManifest, readCurrent, type VersionState } from '../log/manifest.js';
import { scanRecords } from '../log/record.js';
import { TableReader } from '../sst/table-reader.js';

export interface Problem {
  file: string;
  offset: number;
  what: string;
  kind: 'corruption' | 'torn-tail' | 'missing' | 'orphan';
}

export interface VerifyResult {
  ok: boolean;
  problems: Problem[];
  tablesChecked: number;
  segmentsChecked: number;
  manifest: string | undefined;
}

function describe(e: unknown, file: string): Problem {
  if (e instanceof CorruptionError) return { file: e.file, offset: e.offset, what: e.message, kind: 'corruption' };
  return { file, offset: 0, what: String((e as Error)?.message ?? e), kind: 'corruption' };
}

export function verifyDatabase(location: string): VerifyResult {
  const fs = fileSystem();
  const problems: Problem[] = [];
  let state: VersionState | undefined;
  let manifest: string | undefined;
  const kv = kvDir(location);
  try {
    manifest = readCurrent(kv);
    if (!manifest) problems.push({ file: path.join(kv, 'CURRENT'), offset: 0, what: 'CURRENT is missing', kind: 'missing' });
    else {
      state = loadManifest(kv, manifest).state;
      // loadManifest tolerates a torn last edit (it never took effect); verify still reports it.
      const file = path.join(kv, manifest);
      const scan = scanRecords(fs.readFileSync(file), () => {});
      if (scan.problem) problems.push({ file, offset: scan.problem.offset, what: scan.problem.what, kind: 'torn-tail' });
    }
  } catch (e) {
    problems.push(describe(e, path.join(kv, manifest ?? 'CURRENT')));
  }
  const live = new Set(state?.levels.flat().map((f) => f.fileNumber) ?? []);
  const names = fs.existsSync(kv) ? fs.readdirSync(kv) : [];
  const tables = names.map(tableNumberOf).filter((n): n is number => n !== undefined);
  for (const n of live) {
    if (!tables.includes(n)) problems.push({ file: path.join(kv, `${String(n).padStart(6, '0')}.sst`), offset: 0, what: 'named by the MANIFEST but missing', kind: 'missing' });
  }
  for (const n of tables) {
    const file = path.join(kv, `${String(n).padStart(6, '0')}.sst`);
    if (state && !live.has(n)) problems.push({ file, offset: 0, what: 'not named by the MANIFEST (left by an unfinished flush or compaction)', kind: 'orphan' });
    let reader: TableReader | undefined;
    try {
      reader = TableReader.openSync(file, n);
      for (const p of reader.verifySync().problems) problems.push({ file, offset: p.offset, what: p.what, kind: 'corruption' });
    } catch (e) {
      problems.push(describe(e, file));
    } finally {
      reader?.close();
    }
  }
  const segments = fs.existsSync(walDir(location)) ? fs.readdirSync(walDir(location)).map(segmentNumberOf).filter((n): n is number => n !== undefined) : [];
  for (const n of segments) {
    const file = path.join(walDir(location), `segment.${String(n).padStart(6, '0')}.wal`);
    const result = scanRecords(fs.readFileSync(file), () => {});
    if (result.problem) problems.push({ file, offset: result.problem.offset, what: result.problem.what, kind: result.problem.atTail ? 'torn-tail' : 'corruption' });
  }
  return { ok: problems.every((p) => p.kind === 'orphan'), problems, tablesChecked: tables.length, segmentsChecked: segments.length, manifest };
}
