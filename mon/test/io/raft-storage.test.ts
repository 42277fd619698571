import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AspenError } from '@aspen/shared/errors.ts';
import { SnapshotOutOfDateError, SqliteRaftStorage } from '../../src/io/raft-storage.ts';
import { entrySizeBytes } from '../../src/raft/core/util.ts';
import { LogCompactedError, LogUnavailableError } from '../../src/raft/types.ts';
import type { Entry, Snapshot } from '../../src/raft/types.ts';
import { crashEntryData } from './fixtures/crash-data.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const te = new TextEncoder();

function ent(index: number, term: number, text = `e${index}t${term}`): Entry {
  return { index, term, type: 'normal', data: te.encode(text) };
}
function range(lo: number, hi: number, term: number): Entry[] {
  const out: Entry[] = [];
  for (let i = lo; i <= hi; i++) out.push(ent(i, term));
  return out;
}
function texts(entries: readonly Entry[]): string[] {
  return entries.map((e) => `${e.index}/${e.term}/${new TextDecoder().decode(e.data)}`);
}

let dir: string;
let path: string;
const open: SqliteRaftStorage[] = [];
function openStorage(entryCacheMaxBytes?: number): SqliteRaftStorage {
  const s = SqliteRaftStorage.open(entryCacheMaxBytes === undefined ? { path } : { path, entryCacheMaxBytes });
  open.push(s);
  return s;
}
function reopen(s: SqliteRaftStorage, entryCacheMaxBytes?: number): SqliteRaftStorage {
  s.close();
  return openStorage(entryCacheMaxBytes);
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'aspen-raft-storage-'));
  path = join(dir, 'mon.db');
});
afterEach(() => {
  for (const s of open.splice(0)) s.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('SqliteRaftStorage', () => {
  it('starts empty: first index 1, last index 0, term(0) = 0, empty snapshot', () => {
    const s = openStorage();
    expect(s.firstIndex()).toBe(1);
    expect(s.lastIndex()).toBe(0);
    expect(s.term(0)).toBe(0);
    expect(() => s.term(1)).toThrow(LogUnavailableError);
    expect(s.initialState()).toEqual({ hardState: { term: 0, vote: null, commit: 0 }, confState: { voters: [], learners: [] } });
    expect(s.snapshot().metadata.index).toBe(0);
    expect(s.entries(1, 1, 100)).toEqual([]);
  });

  it('persists entries and hard state across close and reopen', () => {
    let s = openStorage();
    s.append(range(1, 5, 1));
    s.setHardState({ term: 2, vote: 'b', commit: 3 });
    s.append(range(6, 7, 2));
    s = reopen(s);
    expect(s.firstIndex()).toBe(1);
    expect(s.lastIndex()).toBe(7);
    expect(s.term(5)).toBe(1);
    expect(s.term(7)).toBe(2);
    expect(texts(s.entries(1, 8, 1 << 20))).toEqual(texts([...range(1, 5, 1), ...range(6, 7, 2)]));
    expect(s.initialState().hardState).toEqual({ term: 2, vote: 'b', commit: 3 });
  });

  it('truncates a conflicting suffix on append, in memory and on disk', () => {
    let s = openStorage();
    s.append(range(1, 10, 1));
    s.append(range(6, 8, 2));
    expect(s.lastIndex()).toBe(8);
    expect(s.term(5)).toBe(1);
    expect(s.term(6)).toBe(2);
    expect(() => s.term(9)).toThrow(LogUnavailableError);
    s = reopen(s);
    expect(s.lastIndex()).toBe(8);
    expect(texts(s.entries(1, 9, 1 << 20))).toEqual(texts([...range(1, 5, 1), ...range(6, 8, 2)]));
  });

  it('limits entries() by size but always returns at least one entry', () => {
    const s = openStorage();
    s.append(range(1, 10, 1));
    expect(s.entries(3, 10, 0).map((e) => e.index)).toEqual([3]);
    const one = entrySizeBytes(ent(1, 1));
    expect(s.entries(1, 10, 3 * one).map((e) => e.index)).toEqual([1, 2, 3]);
    expect(() => s.entries(1, 12, 100)).toThrow(LogUnavailableError);
  });

  it('creates a snapshot, compacts the log, and keeps both across reopen', () => {
    let s = openStorage();
    s.append(range(1, 20, 3));
    const cs = { voters: ['a', 'b', 'c'], learners: ['d'] };
    const snap = s.createSnapshot(10, cs, te.encode('image@10'));
    expect(snap.metadata).toEqual({ index: 10, term: 3, confState: cs });
    s.compact(10);
    expect(s.firstIndex()).toBe(11);
    expect(s.term(10)).toBe(3);
    expect(() => s.term(9)).toThrow(LogCompactedError);
    expect(() => s.entries(10, 12, 100)).toThrow(LogCompactedError);
    s.compact(5); // already compacted: a no-op, as in MemoryStorage
    expect(s.firstIndex()).toBe(11);
    expect(s.createSnapshot(9, cs, new Uint8Array()).metadata.index).toBe(10); // older: the stored one is returned
    s = reopen(s);
    expect(s.firstIndex()).toBe(11);
    expect(s.lastIndex()).toBe(20);
    expect(s.term(10)).toBe(3);
    expect(s.initialState().confState).toEqual(cs);
    expect(new TextDecoder().decode(s.snapshot().data)).toBe('image@10');
    expect(texts(s.entries(11, 21, 1 << 20))).toEqual(texts(range(11, 20, 3)));
  });

  it('applySnapshot replaces the log; an older snapshot is refused and changes nothing', () => {
    let s = openStorage();
    s.append(range(1, 5, 1));
    const snap: Snapshot = { metadata: { index: 30, term: 4, confState: { voters: ['a'], learners: [] } }, data: te.encode('s30') };
    s.applySnapshot(snap);
    expect([s.firstIndex(), s.lastIndex(), s.term(30)]).toEqual([31, 30, 4]);
    expect(() => s.applySnapshot({ ...snap, metadata: { ...snap.metadata, index: 20 } })).toThrow(SnapshotOutOfDateError);
    s.append(range(31, 33, 4));
    s = reopen(s);
    expect([s.firstIndex(), s.lastIndex(), s.term(30), s.term(33)]).toEqual([31, 33, 4, 4]);
    expect(s.snapshot().metadata.index).toBe(30);
  });

  it('saveReady persists snapshot, entries and hard state in one transaction (group commit)', () => {
    let s = openStorage();
    s.append(range(1, 3, 1));
    const snap: Snapshot = { metadata: { index: 10, term: 2, confState: { voters: ['a', 'b'], learners: [] } }, data: te.encode('s10') };
    s.saveReady({ snapshot: snap, entries: range(11, 12, 2), hardState: { term: 2, vote: 'b', commit: 10 } });
    const check = (x: SqliteRaftStorage): void => {
      expect([x.firstIndex(), x.lastIndex(), x.term(10), x.term(12)]).toEqual([11, 12, 2, 2]);
      expect(x.initialState().hardState).toEqual({ term: 2, vote: 'b', commit: 10 });
    };
    check(s);
    // A failing Ready (stale snapshot) leaves everything as it was, including its hard state.
    expect(() => s.saveReady({ snapshot: snap, entries: range(13, 13, 3), hardState: { term: 3, vote: null, commit: 11 } })).toThrow(SnapshotOutOfDateError);
    check(s);
    s = reopen(s);
    check(s);
  });

  it('skips entries at or below the compaction point on append (etcd semantics)', () => {
    const s = openStorage();
    s.append(range(1, 10, 1));
    s.createSnapshot(8, { voters: ['a'], learners: [] }, new Uint8Array());
    s.compact(8);
    s.append(range(5, 12, 1));
    expect([s.firstIndex(), s.lastIndex()]).toEqual([9, 12]);
  });

  it('asserts against programmer errors: gaps, term going back, changed vote', () => {
    const s = openStorage();
    s.append(range(1, 3, 1));
    expect(() => s.append(range(5, 6, 1))).toThrow(/gap/);
    s.setHardState({ term: 5, vote: 'a', commit: 1 });
    expect(() => s.setHardState({ term: 4, vote: null, commit: 1 })).toThrow(/term went back/);
    expect(() => s.setHardState({ term: 5, vote: 'b', commit: 1 })).toThrow(/vote changed/);
  });

  it('matches an in-memory model over random appends, conflicts, snapshots, compactions and reopens with a tiny cache (property)', () => {
    type Op =
      | { kind: 'append'; back: number; count: number; bump: boolean }
      | { kind: 'snapCompact'; back: number; compact: boolean }
      | { kind: 'reopen' }
      | { kind: 'read'; a: number; b: number; maxBytes: number };
    const op: fc.Arbitrary<Op> = fc.oneof(
      { weight: 5, arbitrary: fc.record({ kind: fc.constant('append' as const), back: fc.nat(4), count: fc.integer({ min: 1, max: 6 }), bump: fc.boolean() }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('snapCompact' as const), back: fc.nat(6), compact: fc.boolean() }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('reopen' as const) }) },
      { weight: 3, arbitrary: fc.record({ kind: fc.constant('read' as const), a: fc.nat(40), b: fc.nat(40), maxBytes: fc.nat(400) }) },
    );
    let run = 0;
    fc.assert(
      fc.property(fc.array(op, { maxLength: 25 }), fc.integer({ min: 0, max: 200 }), (ops, cacheBytes) => {
        const p = join(dir, `model-${run++}.db`);
        let s = SqliteRaftStorage.open({ path: p, entryCacheMaxBytes: cacheBytes });
        try {
          // Model: the log as a map index -> entry, plus anchor and snapshot index.
          let log: Entry[] = [];
          let anchor = { index: 0, term: 0 };
          let snapIndex = 0;
          let term = 1;
          const last = (): number => anchor.index + log.length;
          for (const o of ops) {
            if (o.kind === 'append') {
              if (o.bump) term++;
              const first = Math.max(anchor.index + 1, last() + 1 - o.back);
              const entries = [];
              for (let i = 0; i < o.count; i++) entries.push(ent(first + i, term, `x${first + i}@${term}:${run}`));
              s.append(entries);
              log = [...log.slice(0, first - anchor.index - 1), ...entries];
            } else if (o.kind === 'snapCompact') {
              const at = last() - o.back;
              if (at <= snapIndex || at <= anchor.index) continue;
              s.createSnapshot(at, { voters: ['a'], learners: [] }, te.encode(`snap${at}`));
              snapIndex = at;
              if (o.compact) {
                s.compact(at);
                const t = log[at - anchor.index - 1]!.term;
                log = log.slice(at - anchor.index);
                anchor = { index: at, term: t };
              }
            } else if (o.kind === 'reopen') {
              s.close();
              s = SqliteRaftStorage.open({ path: p, entryCacheMaxBytes: cacheBytes });
            } else {
              const lo = Math.min(o.a, o.b);
              const hi = Math.max(o.a, o.b);
              if (lo <= anchor.index) expect(() => s.entries(lo, hi, o.maxBytes)).toThrow(LogCompactedError);
              else if (hi > last() + 1) expect(() => s.entries(lo, hi, o.maxBytes)).toThrow(LogUnavailableError);
              else {
                const got = s.entries(lo, hi, o.maxBytes);
                const want = log.slice(lo - anchor.index - 1, hi - anchor.index - 1);
                expect(texts(got)).toEqual(texts(want.slice(0, got.length)));
                if (lo < hi) expect(got.length).toBeGreaterThan(0);
                const size = got.reduce((n, e) => n + entrySizeBytes(e), 0);
                if (got.length > 1) expect(size).toBeLessThanOrEqual(o.maxBytes);
                if (got.length < want.length) expect(size + entrySizeBytes(want[got.length]!)).toBeGreaterThan(o.maxBytes);
              }
            }
            expect([s.firstIndex(), s.lastIndex(), s.term(anchor.index)]).toEqual([anchor.index + 1, last(), anchor.term]);
            for (const e of log) expect(s.term(e.index)).toBe(e.term);
          }
        } finally {
          s.close();
        }
      }),
      { numRuns: 40 },
    );
  });

  describe('corruption is detected at open and reported as E_CORRUPT naming the record', () => {
    function expectCorrupt(pattern: RegExp): void {
      try {
        openStorage();
      } catch (err) {
        expect(err).toBeInstanceOf(AspenError);
        expect((err as AspenError).code).toBe('E_CORRUPT');
        expect((err as AspenError).message).toMatch(pattern);
        return;
      }
      expect.fail('open succeeded on a corrupt store');
    }
    function flipInRow(sql: string, column: string, key: string | number, at: number): void {
      const db = new Database(path);
      const row = db.prepare(`SELECT ${column} AS v FROM ${sql} = ?`).get(key) as { v: Buffer };
      const body = Buffer.from(row.v);
      body[at % body.length]! ^= 0x10;
      db.prepare(`UPDATE ${sql.split(' ')[0]} SET ${column} = ? WHERE ${sql.split('WHERE ')[1]} = ?`).run(body, key);
      db.close();
    }

    it('a flipped byte in an entry row', () => {
      const s = openStorage();
      s.append(range(1, 9, 1));
      s.close();
      flipInRow('entries WHERE idx', 'body', 5, 20);
      expectCorrupt(/table entries record 5: crc32c mismatch/);
    });

    it('a flipped byte in the hard state and in the snapshot', () => {
      const s = openStorage();
      s.append(range(1, 3, 1));
      s.setHardState({ term: 1, vote: 'a', commit: 2 });
      s.createSnapshot(2, { voters: ['a'], learners: [] }, te.encode('snapshot-bytes'));
      s.close();
      flipInRow('state WHERE name', 'body', 'hard_state', 7);
      expectCorrupt(/table state record hard_state/);
      flipInRow('state WHERE name', 'body', 'hard_state', 7); // flip back
      flipInRow('state WHERE name', 'body', 'snapshot', 40);
      expectCorrupt(/table state record snapshot/);
    });

    it('a flipped byte in a meta row', () => {
      const s = openStorage();
      s.setMeta('fsid', 'f00d');
      s.close();
      flipInRow('meta WHERE key', 'value', 'fsid', 1);
      expectCorrupt(/table meta record fsid/);
    });

    it('a missing entry row (a hole in the log)', () => {
      const s = openStorage();
      s.append(range(1, 6, 1));
      s.close();
      const db = new Database(path);
      db.prepare('DELETE FROM entries WHERE idx = 4').run();
      db.close();
      expectCorrupt(/table entries record 5: expected index 4/);
    });

    it('a flipped byte in the database file itself (bit rot under SQLite)', () => {
      const s = openStorage();
      const marker = 'MARKER-0123456789-ABCDEFGHIJ';
      s.append([ent(1, 1, 'first'), ent(2, 1, marker), ent(3, 1, 'third')]);
      s.close(); // checkpoints the WAL into the main file
      const file = readFileSync(path);
      const at = file.indexOf(marker);
      expect(at).toBeGreaterThan(0);
      file[at + 3]! ^= 0x01;
      writeFileSync(path, file);
      expectCorrupt(/table entries record 2: crc32c mismatch/);
    });
  });

  it('records the cluster identity and refuses another cluster or mon (E_WRONG_CLUSTER)', () => {
    let s = openStorage();
    expect(() => s.verifyIdentity('fsid-1', 'a', false)).toThrow(/E_WRONG_CLUSTER.*mkfs/);
    expect(s.verifyIdentity('fsid-1', 'a', true)).toBe(true);
    s = reopen(s);
    expect(s.getMeta('fsid')).toBe('fsid-1');
    expect(s.getMeta('nope')).toBeUndefined();
    expect(s.verifyIdentity('fsid-1', 'a', false)).toBe(false);
    expect(() => s.verifyIdentity('fsid-2', 'a', true)).toThrow(/E_WRONG_CLUSTER: data directory belongs to cluster fsid-1/);
    expect(() => s.verifyIdentity('fsid-1', 'b', true)).toThrow(/E_WRONG_CLUSTER: data directory belongs to mon.a/);
  });

  it('refuses a second opener of the same database (EBUSY)', () => {
    openStorage();
    expect(() => SqliteRaftStorage.open({ path, busyTimeoutMs: 50 })).toThrow(/EBUSY/);
  });
});

describe('SqliteRaftStorage crash safety (process kill -9)', () => {
  it('keeps every acknowledged append across repeated kill -9 of a writer process', async () => {
    const child = join(HERE, 'fixtures', 'raft-storage-crash-child.ts');
    const seed = Number(process.env['ASPEN_SEED'] ?? Math.floor(Math.random() * 2 ** 31));
    let rng = seed || 1;
    const rand = (n: number): number => {
      rng = (rng * 48271) % 2147483647;
      return rng % n;
    };
    // index -> term of every acknowledged entry, over all rounds.
    const acked = new Map<number, number>();
    let maxAcked = 0;
    let compactions = 0;
    const rounds = 5;
    for (let round = 0; round < rounds; round++) {
      const proc = spawn(process.execPath, ['--import', 'tsx', child, path, String(seed + round)], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
      let buf = '';
      let prev = -1;
      let ready!: () => void;
      const readyP = new Promise<void>((r) => (ready = r));
      proc.stdout.on('data', (d: Buffer) => {
        buf += d.toString();
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).split(' ');
          buf = buf.slice(nl + 1);
          if (line[0] === 'ready') {
            prev = Number(line[1]);
            ready();
          } else if (line[0] === 'ack') {
            const last = Number(line[1]);
            const term = Number(line[2]);
            for (let i = prev + 1; i <= last; i++) acked.set(i, term);
            prev = last;
            maxAcked = Math.max(maxAcked, last);
          }
        }
      });
      try {
        await Promise.race([readyP, exited.then((e) => Promise.reject(new Error(`child exited early ${JSON.stringify(e)}: ${stderr}`)))]);
        await new Promise((r) => setTimeout(r, 50 + rand(400)));
      } finally {
        // Always by its pid, also when the wait above failed: never leave a writer running.
        proc.kill('SIGKILL');
      }
      const how = await exited;
      expect(how.signal, `seed ${seed}: child should die by SIGKILL, stderr: ${stderr}`).toBe('SIGKILL');

      const s = SqliteRaftStorage.open({ path });
      try {
        expect(s.lastIndex(), `reproduce: ASPEN_SEED=${seed} (round ${round})`).toBeGreaterThanOrEqual(maxAcked);
        expect(s.initialState().hardState.commit).toBeGreaterThanOrEqual(maxAcked);
        // Compaction may have removed old entries, never past the snapshot.
        const snap = s.snapshot();
        expect(s.firstIndex() - 1).toBeLessThanOrEqual(snap.metadata.index);
        if (snap.metadata.index > 0) {
          expect(new TextDecoder().decode(snap.data)).toBe(`snap@${snap.metadata.index}`);
          expect(snap.metadata.index).toBeLessThanOrEqual(s.lastIndex());
          compactions++;
        }
        const all = s.entries(s.firstIndex(), s.lastIndex() + 1, Number.MAX_SAFE_INTEGER);
        expect(all.length).toBe(s.lastIndex() - s.firstIndex() + 1);
        for (const e of all) {
          const term = acked.get(e.index);
          if (term !== undefined) expect(e.term, `seed ${seed}: term of acked entry ${e.index}`).toBe(term);
          expect(Buffer.from(e.data).equals(Buffer.from(crashEntryData(e.index, e.term))), `seed ${seed}: data of entry ${e.index}`).toBe(true);
        }
        // Entries written but not acknowledged before the kill may be present; they become acknowledged history for later rounds.
        for (const e of all) if (!acked.has(e.index)) acked.set(e.index, e.term);
        maxAcked = Math.max(maxAcked, s.lastIndex());
      } finally {
        s.close();
      }
    }
    expect(maxAcked).toBeGreaterThan(rounds);
    expect(compactions, 'the writer snapshotted and compacted').toBeGreaterThan(0);
  }, 90_000);
});
