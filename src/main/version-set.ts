// Threads: the caller's (main) thread. Tracks which Versions are alive and deletes SST files
// once nothing can read them.
//
// Every reader that may outlive a synchronous call holds a reference on the Version it reads:
// an iterator and an explicit snapshot for their lifetime, an async get across its awaits.
// The current Version holds one reference of its own. Each file counts the live Versions that
// contain it; when that count reaches zero and the file is not in the current Version, it is
// obsolete, and onObsolete() closes and deletes it.
//
// Other threads never read a file unpinned: a compaction's inputs are pinned by the Version
// ref the coordinator holds while the task runs. So the counts live on this thread only.
// (LevelDB does the same with Version refs; RocksDB with SuperVersion refs.)

import type { Version } from './version.js';

export class VersionSet {
  private currentVersion: Version;
  private readonly versionRefs = new Map<Version, number>();
  private readonly fileRefs = new Map<number, number>();
  /** Live Versions holding each memtable, by generation (same scheme as fileRefs). */
  private readonly memtableRefs = new Map<number, number>();

  constructor(
    initial: Version,
    private readonly onObsolete: (fileNumbers: number[]) => void,
    /** Memtables no live Version holds: nothing on this thread reads them again. */
    private readonly onMemtablesReleased: (generations: number[]) => void = () => {},
  ) {
    this.currentVersion = initial;
    this.ref(initial);
  }

  get current(): Version {
    return this.currentVersion;
  }

  /** Makes v current; the previous current loses its own reference. */
  install(v: Version): void {
    const old = this.currentVersion;
    this.currentVersion = v;
    this.ref(v);
    this.unref(old);
  }

  /** Pins the current Version for a reader; pair with unref(). */
  acquire(): Version {
    const v = this.currentVersion;
    this.ref(v);
    return v;
  }

  ref(v: Version): void {
    const n = this.versionRefs.get(v) ?? 0;
    this.versionRefs.set(v, n + 1);
    if (n !== 0) return;
    for (const files of v.levels) for (const f of files) this.fileRefs.set(f.fileNumber, (this.fileRefs.get(f.fileNumber) ?? 0) + 1);
    for (const m of memtablesOf(v)) this.memtableRefs.set(m, (this.memtableRefs.get(m) ?? 0) + 1);
  }

  unref(v: Version): void {
    const n = this.versionRefs.get(v);
    if (n === undefined) throw new Error('stemedb assertion failed: unref of a Version without references');
    if (n > 1) { this.versionRefs.set(v, n - 1); return; }
    this.versionRefs.delete(v);
    const obsolete: number[] = [];
    for (const files of v.levels) {
      for (const f of files) {
        const c = this.fileRefs.get(f.fileNumber)! - 1;
        if (c > 0) this.fileRefs.set(f.fileNumber, c);
        else { this.fileRefs.delete(f.fileNumber); obsolete.push(f.fileNumber); }
      }
    }
    if (obsolete.length > 0) this.onObsolete(obsolete);
    const released: number[] = [];
    for (const m of memtablesOf(v)) {
      const c = this.memtableRefs.get(m)! - 1;
      if (c > 0) this.memtableRefs.set(m, c);
      else { this.memtableRefs.delete(m); released.push(m); }
    }
    if (released.length > 0) this.onMemtablesReleased(released);
  }

  /** Live Versions (current included); for stats and tests. */
  get liveVersionCount(): number {
    return this.versionRefs.size;
  }

  isLive(fileNumber: number): boolean {
    return this.fileRefs.has(fileNumber);
  }
}

function memtablesOf(v: Version): number[] {
  const out = [v.active.generation];
  for (const m of v.immutables) out.push(m.generation);
  return out;
}
