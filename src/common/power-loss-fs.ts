// Threads: all (test use only). A power-loss ("crashable") file system, in the manner of
// LevelDB's fault_injection_test and Pebble's strict MemFS, for an engine that runs in
// several threads (caller, WAL worker, pool workers) and so cannot use an in-memory FS.
//
// Two halves:
//
// 1. powerLossFileSystem() wraps the real file system in every thread (installed from the
//    plain spec { kind: 'power-loss', root, shadow }; tests set STEMEDB_POWER_LOSS to the JSON
//    of { root, shadow } and fs.ts installs it at load in every thread, workers included).
//    Every operation still happens on the real files. In addition, each operation on a path
//    under `root` that matters for durability appends one JSON line to <shadow>/journal:
//      open     (any mode but 'r')  whether it created a new file or truncated an existing one
//      sync     fdatasync/fsync of a file: its full bytes at that moment are copied to
//               <shadow>/blobs/<pid>-<thread>-<nonce>-<n> first, and the line names the copy
//      syncdir  fsync of a directory
//      mkdir, rename, unlink
//    Every thread appends to the one journal through its own O_APPEND descriptor, one write()
//    per line, so lines never interleave (Linux serializes appends to a regular file) and
//    their order is the order the operations returned in. Processes that run one after the
//    other on the same tree (process crashes before the power cut) continue the same journal. A line is written after the real operation returns and before the wrapper returns to
//    the engine, so anything the engine did *because* an operation returned is journaled after
//    it. Writes are not journaled: unsynced bytes are read back from the real files at the end.
//
// 2. simulatePowerLoss() runs after the writer process was SIGKILLed. It replays the journal
//    over the durable starting image (`baseline`: every file and entry in it is taken to be
//    durable) and writes into a fresh directory what a machine would find after losing power
//    at the moment of the kill. The model is inode based:
//
//    Files. A file is an inode. Its durable contents are its bytes at its last fdatasync or
//    fsync (through any descriptor or thread), and nothing at all if it was never synced.
//    fdatasync and fsync count the same (fdatasync also persists the size). Writes, ftruncate
//    and O_TRUNC are not durable until the next sync of that inode.
//
//    Directories. A directory's durable entries (name -> inode) are a snapshot taken at its
//    last fsync; one that was never fsynced has no durable entries. Creating, renaming and
//    unlinking change only the live entries until the directory is fsynced. So:
//      - a file synced but whose entry was never made durable is absent;
//      - an entry made durable whose file was never synced is present and empty;
//      - the entry and the data are independent: an entry points at the inode, and the inode
//        carries its latest synced bytes whichever name reaches it;
//      - rename(a, b) without a later directory fsync: the image still has the old entries
//        (b names its old inode, or is absent; a is still there if its creation was durable);
//      - unlink without a later directory fsync: the file is back, with its synced bytes;
//      - mkdir makes an entry in the parent like any other: durable only when the parent is
//        fsynced. `root` itself is taken to exist durably.
//
//    Options make the loss less kind than the strict model, within what real file systems do:
//      data 'synced'  unsynced bytes are all lost (LevelDB / Pebble strict model).
//           'tail'    a file also keeps a random prefix of the bytes it gained after its last
//                     sync (an append-only file written back partly, in order).
//           'pages'   the unsynced range is written back page by page in any order: the file
//                     ends at a random length past its synced length, and each 4 KiB page of
//                     the unsynced range holds either its new bytes or zeros.
//                     An inode truncated by O_TRUNC since its last sync may also come back
//                     empty (plus the tail/pages of its new bytes) in 'tail' and 'pages'.
//      dirs 'synced'  a directory has exactly its entries at its last fsync.
//           'prefix'  it also has a random prefix of the entry changes made after that fsync,
//                     in order (as a journaling file system commits metadata on its own).
//
//    Known limits: the journal line of an operation that returned just as the process was
//    killed may be missing; the model then treats the operation as not having happened,
//    which is one of the outcomes a power cut at that instant allows. Renames across
//    directories are modeled as an unlink in one and a create in the other. Bytes beyond a
//    file's synced length are only kept when the file grew by appending since that sync. A
//    sync copies the file as the syncing thread reads it right after the sync returns, which
//    is exact as long as no other thread writes the file meanwhile (each engine file has one
//    writer at a time).

import * as nodeFs from 'node:fs';
import * as path from 'node:path';
import { threadId } from 'node:worker_threads';
import type { FileSystem } from './fs.js';

export interface PowerLossSpec {
  kind: 'power-loss';
  /** The tree whose durability is tracked (the database location). Other paths pass through. */
  root: string;
  /** Directory for the journal and the synced-content copies. Must exist. */
  shadow: string;
}

/** Journal lines. Paths are relative to root, '/'-separated, '' for root itself. */
type JournalEvent =
  | { t: 'open'; id: string; p: string; create: boolean; trunc: boolean }
  | { t: 'sync'; id?: string; p: string; blob: string; n: number }
  | { t: 'syncdir'; p: string }
  | { t: 'mkdir'; p: string }
  | { t: 'rename'; a: string; b: string }
  | { t: 'unlink'; p: string };

export const JOURNAL_NAME = 'journal';
export const BLOBS_DIR = 'blobs';

export function powerLossFileSystem(base: FileSystem, spec: PowerLossSpec): FileSystem {
  const root = path.resolve(spec.root);
  const blobs = path.join(spec.shadow, BLOBS_DIR);
  if ((path.resolve(spec.shadow) + path.sep).startsWith(root + path.sep)) throw new Error('power-loss fs: the shadow directory must be outside the tracked root');
  // Unique across the threads and processes that share one shadow directory, even if a pid is reused.
  const tag = `${process.pid}-${threadId}-${Math.random().toString(36).slice(2, 8)}`;
  let counter = 0;
  let journalFd = -1;
  /** Descriptors opened on tracked paths: the path they were opened with and their journal id. */
  const opens = new Map<number, { rel: string; id?: string }>();

  const relative = (file: string): string | undefined => {
    const abs = path.resolve(file);
    if (abs === root) return '';
    if (!abs.startsWith(root + path.sep)) return undefined;
    return abs.slice(root.length + 1).split(path.sep).join('/');
  };
  const journal = (event: JournalEvent) => {
    if (journalFd < 0) {
      nodeFs.mkdirSync(blobs, { recursive: true });
      journalFd = nodeFs.openSync(path.join(spec.shadow, JOURNAL_NAME), 'a');
    }
    const line = Buffer.from(JSON.stringify(event) + '\n');
    const n = nodeFs.writeSync(journalFd, line, 0, line.length);
    if (n !== line.length) throw new Error(`power-loss fs: short journal write (${n} of ${line.length})`);
  };
  const recordSync = (fd: number) => {
    const o = opens.get(fd);
    if (!o) return;
    let data: Buffer;
    // /proc/self/fd reaches the inode even if it was renamed or unlinked since it was opened,
    // and works for write-only descriptors.
    try { data = nodeFs.readFileSync(`/proc/self/fd/${fd}`); } catch { data = nodeFs.readFileSync(path.join(root, o.rel)); }
    if (journalFd < 0) nodeFs.mkdirSync(blobs, { recursive: true });
    const blob = `${tag}-${++counter}`;
    nodeFs.writeFileSync(path.join(blobs, blob), data);
    journal({ t: 'sync', id: o.id, p: o.rel, blob, n: data.length });
  };

  return {
    ...base,
    openSync: (file, flags) => {
      const rel = relative(file);
      if (rel === undefined) return base.openSync(file, flags);
      if (flags === 'r' || flags === 'rs') {
        const fd = base.openSync(file, flags);
        opens.set(fd, { rel });
        return fd;
      }
      const creates = flags.startsWith('w') || flags.startsWith('a');
      const exclusive = flags.includes('x');
      const existed = exclusive ? false : creates ? base.existsSync(file) : true;
      const fd = base.openSync(file, flags);
      const id = `${tag}-${++counter}`;
      opens.set(fd, { rel, id });
      journal({ t: 'open', id, p: rel, create: creates && !existed, trunc: flags.startsWith('w') && existed });
      return fd;
    },
    closeSync: (fd) => { opens.delete(fd); base.closeSync(fd); },
    fdatasyncSync: (fd) => { base.fdatasyncSync(fd); recordSync(fd); },
    fsyncSync: (fd) => { base.fsyncSync(fd); recordSync(fd); },
    syncDirSync: (dir) => {
      base.syncDirSync(dir);
      const rel = relative(dir);
      if (rel !== undefined) journal({ t: 'syncdir', p: rel });
    },
    mkdirSync: (dir) => {
      const created: string[] = [];
      for (let d = path.resolve(dir); relative(d) !== undefined && relative(d) !== '' && !base.existsSync(d); d = path.dirname(d)) {
        created.unshift(relative(d)!);
      }
      base.mkdirSync(dir);
      for (const p of created) journal({ t: 'mkdir', p });
    },
    renameSync: (from, to) => {
      base.renameSync(from, to);
      const a = relative(from), b = relative(to);
      if (a !== undefined && b !== undefined) journal({ t: 'rename', a, b });
      else if (a !== undefined) journal({ t: 'unlink', p: a });
      else if (b !== undefined) throw new Error(`power-loss fs: rename into the tracked tree from outside it is not modeled (${from})`);
    },
    unlinkSync: (file) => {
      base.unlinkSync(file);
      const rel = relative(file);
      if (rel !== undefined) journal({ t: 'unlink', p: rel });
    },
  };
}

// ---- replay and simulated power loss ----

export type DataLoss = 'synced' | 'tail' | 'pages';
export type DirLoss = 'synced' | 'prefix';

export interface PowerLossOptions {
  /** The shadow directory the writer's threads journaled into. */
  shadow: string;
  /** The tracked tree as the killed process left it (read only for unsynced bytes in 'tail'/'pages'). */
  root: string;
  /** The tree that `root` was a copy of when tracking began, all of it durable. Omit for an empty root. */
  baseline?: string;
  /** Where to build the post-power-loss image. Must not exist or be empty. */
  out: string;
  data: DataLoss;
  dirs: DirLoss;
  /** Uniform [0, 1). Only consulted for the random choices of 'tail', 'pages' and 'prefix'. */
  random: () => number;
}

export interface PowerLossReport {
  /** One line per entry decision, for failure messages. */
  lines: string[];
  /** Journal lines replayed. */
  events: number;
  files: number;
  /** Live entries (at the kill) that the image does not have. */
  entriesLost: number;
  /** Files whose image holds fewer or other bytes than the live file at the kill. */
  filesCut: number;
}

interface FileNode {
  kind: 'file';
  serial: number;
  /** Durable bytes: a blob or baseline file path, or undefined when never synced. */
  durable?: string;
  /** O_TRUNC since the last sync. */
  truncatedSinceSync: boolean;
}

type DirOp = { name: string; node: Node | undefined };

interface DirNode {
  kind: 'dir';
  serial: number;
  live: Map<string, Node>;
  synced: Map<string, Node>;
  /** Entry changes since the last fsync, in order (node undefined = removed). */
  pending: DirOp[];
}

type Node = FileNode | DirNode;

const PAGE_BYTES = 4096;

export function simulatePowerLoss(options: PowerLossOptions): PowerLossReport {
  let serial = 0;
  const newDir = (): DirNode => ({ kind: 'dir', serial: ++serial, live: new Map(), synced: new Map(), pending: [] });
  const newFile = (durable?: string): FileNode => ({ kind: 'file', serial: ++serial, durable, truncatedSinceSync: false });

  const top = newDir();
  if (options.baseline) {
    const load = (dir: DirNode, abs: string) => {
      for (const entry of nodeFs.readdirSync(abs, { withFileTypes: true })) {
        const child = path.join(abs, entry.name);
        let node: Node;
        if (entry.isDirectory()) { node = newDir(); load(node, child); } else node = newFile(child);
        dir.live.set(entry.name, node);
        dir.synced.set(entry.name, node);
      }
    };
    load(top, options.baseline);
  }

  const split = (rel: string) => (rel === '' ? [] : rel.split('/'));
  const resolveDir = (parts: string[], what: string): DirNode => {
    let d = top;
    for (const part of parts) {
      const next = d.live.get(part);
      if (!next || next.kind !== 'dir') throw new Error(`power-loss replay: ${what}: no directory ${parts.join('/')} in the model`);
      d = next;
    }
    return d;
  };
  const parentOf = (rel: string, what: string): [DirNode, string] => {
    const parts = split(rel);
    if (parts.length === 0) throw new Error(`power-loss replay: ${what} on the root`);
    return [resolveDir(parts.slice(0, -1), what), parts[parts.length - 1]];
  };
  const setEntry = (dir: DirNode, name: string, node: Node | undefined) => {
    if (node) dir.live.set(name, node); else dir.live.delete(name);
    dir.pending.push({ name, node });
  };

  const blobs = path.join(options.shadow, BLOBS_DIR);
  const opened = new Map<string, FileNode>();
  const journalFile = path.join(options.shadow, JOURNAL_NAME);
  const text = nodeFs.existsSync(journalFile) ? nodeFs.readFileSync(journalFile, 'utf8') : '';
  const lines = text.split('\n').filter((l) => l.length > 0);
  let events = 0;
  for (let i = 0; i < lines.length; i++) {
    let e: JournalEvent;
    try { e = JSON.parse(lines[i]) as JournalEvent; } catch (err) {
      if (i === lines.length - 1) break; // cut by the kill
      throw new Error(`power-loss replay: journal line ${i + 1} is not JSON: ${lines[i].slice(0, 200)}`);
    }
    events++;
    const what = `journal line ${i + 1} ${lines[i]}`;
    switch (e.t) {
      case 'open': {
        const [dir, name] = parentOf(e.p, what);
        let node = dir.live.get(name);
        if (node?.kind === 'dir') throw new Error(`power-loss replay: ${what}: opened a directory`);
        if (e.create || !node) {
          node = newFile();
          setEntry(dir, name, node);
        } else if (e.trunc) {
          node.truncatedSinceSync = true;
        }
        opened.set(e.id, node);
        break;
      }
      case 'sync': {
        let node = e.id ? opened.get(e.id) : undefined;
        if (!node) {
          const [dir, name] = parentOf(e.p, what);
          const found = dir.live.get(name);
          if (!found || found.kind !== 'file') throw new Error(`power-loss replay: ${what}: no such file in the model`);
          node = found;
        }
        node.durable = path.join(blobs, e.blob);
        node.truncatedSinceSync = false;
        break;
      }
      case 'syncdir': {
        const dir = resolveDir(split(e.p), what);
        dir.synced = new Map(dir.live);
        dir.pending = [];
        break;
      }
      case 'mkdir': {
        const [dir, name] = parentOf(e.p, what);
        if (!dir.live.has(name)) setEntry(dir, name, newDir());
        break;
      }
      case 'rename': {
        const [from, a] = parentOf(e.a, what);
        const [to, b] = parentOf(e.b, what);
        const node = from.live.get(a);
        if (!node) throw new Error(`power-loss replay: ${what}: no such entry in the model`);
        setEntry(from, a, undefined);
        setEntry(to, b, node);
        break;
      }
      case 'unlink': {
        const [dir, name] = parentOf(e.p, what);
        setEntry(dir, name, undefined);
        break;
      }
      default:
        throw new Error(`power-loss replay: ${what}: unknown event`);
    }
  }

  // Where each inode lives now, to read the bytes it gained since its last sync.
  const livePath = new Map<Node, string>();
  const walkLive = (dir: DirNode, rel: string) => {
    for (const [name, node] of dir.live) {
      const r = rel ? `${rel}/${name}` : name;
      if (!livePath.has(node)) livePath.set(node, r);
      if (node.kind === 'dir') walkLive(node, r);
    }
  };
  walkLive(top, '');

  const report: PowerLossReport = { lines: [], events, files: 0, entriesLost: 0, filesCut: 0 };
  const random = options.random;
  const written = new Map<FileNode, Buffer>();

  const contentOf = (node: FileNode, rel: string): Buffer => {
    const cached = written.get(node);
    if (cached) return cached;
    let durable: Buffer = node.durable ? nodeFs.readFileSync(node.durable) : Buffer.alloc(0);
    const where = livePath.get(node);
    let current: Buffer | undefined;
    if (where !== undefined) {
      try { current = nodeFs.readFileSync(path.join(options.root, ...where.split('/'))); } catch { current = undefined; }
    }
    let out: Buffer = durable;
    let how = node.durable ? `synced ${durable.length} B` : 'never synced: empty';
    if (options.data !== 'synced' && current) {
      if (node.truncatedSinceSync && random() < 0.5) {
        durable = Buffer.alloc(0);
        how = `O_TRUNC persisted (synced ${out.length} B dropped)`;
      }
      const d = durable.length;
      if (current.length > d && current.subarray(0, d).equals(durable)) {
        const end = d + Math.floor(random() * (current.length - d + 1));
        if (options.data === 'tail') {
          out = current.subarray(0, end);
          how += `, +${end - d} of ${current.length - d} unsynced B`;
        } else {
          out = Buffer.alloc(end);
          durable.copy(out, 0);
          let kept = 0, zeroed = 0;
          for (let page = Math.floor(d / PAGE_BYTES) * PAGE_BYTES; page < end; page += PAGE_BYTES) {
            const from = Math.max(page, d), to = Math.min(page + PAGE_BYTES, end);
            if (random() < 0.5) { current.copy(out, from, from, to); kept++; } else zeroed++;
          }
          how += `, length ${d}+${end - d} of ${current.length - d} unsynced B: ${kept} pages written, ${zeroed} zeroed`;
        }
      } else {
        out = durable;
      }
    }
    if (current && !out.equals(current)) report.filesCut++;
    report.lines.push(`${rel}: ${how}${current ? ` (live ${current.length} B)` : where === undefined ? ' (unlinked)' : ''}`);
    written.set(node, out);
    return out;
  };

  const materialize = (dir: DirNode, outDir: string, rel: string) => {
    const entries = new Map(dir.synced);
    let applied = 0;
    if (options.dirs === 'prefix' && dir.pending.length > 0) {
      applied = Math.floor(random() * (dir.pending.length + 1));
      for (const op of dir.pending.slice(0, applied)) {
        if (op.node) entries.set(op.name, op.node); else entries.delete(op.name);
      }
    }
    if (dir.pending.length > 0) report.lines.push(`${rel || '.'}/: ${dir.pending.length} entry changes since the last fsync, ${applied} kept`);
    for (const name of dir.live.keys()) {
      if (entries.get(name) !== dir.live.get(name)) {
        report.entriesLost++;
        report.lines.push(`${rel ? `${rel}/` : ''}${name}: live entry not durable${entries.has(name) ? ' (names an older inode)' : ' (absent)'}`);
      }
    }
    for (const [name, node] of [...entries].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))) {
      const r = rel ? `${rel}/${name}` : name;
      const target = path.join(outDir, name);
      if (node.kind === 'dir') {
        nodeFs.mkdirSync(target);
        materialize(node, target, r);
      } else {
        nodeFs.writeFileSync(target, contentOf(node, r));
        report.files++;
      }
    }
  };
  nodeFs.mkdirSync(options.out, { recursive: true });
  materialize(top, options.out, '');
  return report;
}
