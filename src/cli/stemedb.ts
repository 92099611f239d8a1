#!/usr/bin/env node
// Threads: the CLI process (main thread; the work runs in the pool like any database's).
//
//   stemedb verify <dir>    report every bad block or record; exit 1 if anything is bad
//   stemedb repair <dir>    rebuild <dir> from the SSTs that verify and the WAL; report losses
//   stemedb-api --rebuild-from-wal --wal-path <dir>/wal --kv-path <dir>/kv
//                           the runbooks' spelling of repair
import * as path from 'node:path';
import { StemeDB } from '../main/db.js';

function usage(): never {
  console.error('usage: stemedb verify <dir> | stemedb repair <dir> | stemedb-api --rebuild-from-wal --wal-path <dir>/wal --kv-path <dir>/kv');
  process.exit(2);
}

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

async function main(args: string[]): Promise<number> {
  let command = args[0];
  let location = args[1];
  if (args.includes('--rebuild-from-wal')) {
    const wal = flag(args, '--wal-path');
    const kv = flag(args, '--kv-path');
    if (!wal || !kv) usage();
    const walParent = path.dirname(path.resolve(wal));
    const kvParent = path.dirname(path.resolve(kv));
    if (walParent !== kvParent || path.basename(wal) !== 'wal' || path.basename(kv) !== 'kv') {
      console.error('--wal-path and --kv-path must be <dir>/wal and <dir>/kv of one database');
      return 2;
    }
    command = 'repair';
    location = walParent;
  }
  if (!location || (command !== 'verify' && command !== 'repair')) usage();
  if (command === 'verify') {
    const result = await StemeDB.verify(location);
    for (const p of result.problems) console.log(`${p.kind}\t${p.file}\toffset ${p.offset}\t${p.what}`);
    console.log(`${result.ok ? 'ok' : 'BAD'}: ${result.tablesChecked} tables, ${result.segmentsChecked} WAL segments, manifest ${result.manifest ?? 'none'}, ${result.problems.length} problem(s)`);
    return result.ok ? 0 : 1;
  }
  const report = await StemeDB.repair(location);
  console.log(JSON.stringify(report, null, 2));
  return 0;
}

main(process.argv.slice(2)).then((code) => process.exit(code), (e) => {
  console.error(`stemedb: ${e?.code ?? 'error'}: ${e?.message ?? e}`);
  process.exit(1);
});
