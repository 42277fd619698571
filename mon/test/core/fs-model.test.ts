/**
 * Property tests of the filesystem namespace: random operation sequences run against the
 * monitor state machine AND a tiny model (a plain tree of nodes, hard links by reference),
 * which must agree on every result code, every allocated inode and, after every step, the
 * whole tree (entries, types, nlink, sizes, '..', orphans, xattrs). Refusals change nothing,
 * and a snapshot → restore gives an equal state with identical bytes.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeMonState, encodeMonState } from '../../src/core/snapshot.ts';
import { namespaceErrors } from '../../src/core/fs-namespace.ts';
import { type Attr, FS, FsDriver, ROOT, snapshotOf } from './fs-helpers.ts';

// ---- the model -------------------------------------------------------------------------

interface MLeaf { ino: number; type: 'file' | 'symlink'; nlink: number; size: number; xattrs: Set<string> }
interface MDir { ino: number; type: 'dir'; children: Map<string, MNode>; parent: MDir | null; xattrs: Set<string> }
type MNode = MLeaf | MDir;

class Refused extends Error {
  constructor(readonly code: string) {
    super(code);
  }
}
const no = (code: string): never => {
  throw new Refused(code);
};

class Model {
  readonly root: MDir = { ino: ROOT, type: 'dir', children: new Map(), parent: null, xattrs: new Set() };
  readonly byIno = new Map<number, MNode>([[ROOT, this.root]]);
  readonly orphans = new Set<number>();
  nextIno = 2;

  private node(ino: number): MNode {
    return this.byIno.get(ino) ?? no('ENOENT');
  }
  private dir(ino: number): MDir {
    const n = this.node(ino);
    return n.type === 'dir' ? n : no('ENOTDIR');
  }
  private static name(n: string): void {
    if (n === '' || n === '.' || n === '..' || n.includes('/')) no('EINVAL');
  }
  private fresh<T extends MNode>(make: (ino: number) => T): T {
    const n = make(this.nextIno++);
    this.byIno.set(n.ino, n);
    return n;
  }
  /** Removes one name of a leaf; an unlinked file becomes an orphan, a symlink goes. */
  private dropLeaf(n: MLeaf): void {
    n.nlink--;
    if (n.nlink > 0) return;
    if (n.type === 'symlink') this.byIno.delete(n.ino);
    else this.orphans.add(n.ino);
  }
  private within(d: MDir, anc: MDir): boolean {
    for (let c: MDir | null = d; c !== null; c = c.parent) if (c === anc) return true;
    return false;
  }

  create(p: number, name: string, exclusive: boolean): number {
    const d = this.dir(p);
    Model.name(name);
    const old = d.children.get(name);
    if (old !== undefined) {
      if (exclusive) no('EEXIST');
      if (old.type === 'dir') no('EISDIR');
      if (old.type === 'symlink') no('EEXIST');
      return old.ino;
    }
    const f = this.fresh((ino): MLeaf => ({ ino, type: 'file', nlink: 1, size: 0, xattrs: new Set() }));
    d.children.set(name, f);
    return f.ino;
  }
  mkdir(p: number, name: string): number {
    const d = this.dir(p);
    Model.name(name);
    if (d.children.has(name)) no('EEXIST');
    const n = this.fresh((ino): MDir => ({ ino, type: 'dir', children: new Map(), parent: d, xattrs: new Set() }));
    d.children.set(name, n);
    return n.ino;
  }
  symlink(p: number, name: string): number {
    const d = this.dir(p);
    Model.name(name);
    if (d.children.has(name)) no('EEXIST');
    const n = this.fresh((ino): MLeaf => ({ ino, type: 'symlink', nlink: 1, size: 6, xattrs: new Set() }));
    d.children.set(name, n);
    return n.ino;
  }
  link(ino: number, p: number, name: string): void {
    const n = this.node(ino);
    const d = this.dir(p);
    Model.name(name);
    if (d.children.has(name)) no('EEXIST');
    if (n.type === 'dir') return no('EPERM');
    if (n.nlink === 0) no('ENOENT');
    n.nlink++;
    d.children.set(name, n);
  }
  unlink(p: number, name: string): void {
    const d = this.dir(p);
    Model.name(name);
    const n = d.children.get(name) ?? no('ENOENT');
    if (n.type === 'dir') return no('EISDIR');
    d.children.delete(name);
    this.dropLeaf(n);
  }
  rmdir(p: number, name: string): void {
    const d = this.dir(p);
    Model.name(name);
    const n = d.children.get(name) ?? no('ENOENT');
    if (n.type !== 'dir') return no('ENOTDIR');
    if (n.children.size > 0) no('ENOTEMPTY');
    d.children.delete(name);
    this.byIno.delete(n.ino);
  }
  rename(sp: number, sn: string, dp: number, dn: string, flags: 'none' | 'noreplace' | 'exchange'): void {
    const sd = this.dir(sp);
    const dd = this.dir(dp);
    Model.name(sn);
    Model.name(dn);
    const s = sd.children.get(sn) ?? no('ENOENT');
    const t = dd.children.get(dn);
    if (flags === 'noreplace' && t !== undefined) no('EEXIST');
    if (flags === 'exchange' && t === undefined) no('ENOENT');
    if (s === t) return;
    if (s.type === 'dir' && this.within(dd, s)) no('EINVAL');
    if (flags === 'exchange') {
      if (t!.type === 'dir' && this.within(sd, t!)) no('EINVAL');
      sd.children.set(sn, t!);
      dd.children.set(dn, s);
      if (s.type === 'dir') s.parent = dd;
      if (t!.type === 'dir') t!.parent = sd;
      return;
    }
    if (t !== undefined) {
      if (s.type === 'dir' && t.type !== 'dir') no('ENOTDIR');
      if (s.type !== 'dir' && t.type === 'dir') no('EISDIR');
      if (t.type === 'dir' && t.children.size > 0) no('ENOTEMPTY');
    }
    sd.children.delete(sn);
    if (t !== undefined) {
      if (t.type === 'dir') this.byIno.delete(t.ino);
      else this.dropLeaf(t);
    }
    dd.children.set(dn, s);
    if (s.type === 'dir') s.parent = dd;
  }
  truncate(ino: number, size: number): void {
    const n = this.node(ino);
    if (n.type === 'dir') no('EISDIR');
    if (n.type === 'symlink') no('EINVAL');
    (n as MLeaf).size = size;
  }
  setxattr(ino: number, name: string, flags: 'none' | 'create' | 'replace'): void {
    const n = this.node(ino);
    if (flags === 'create' && n.xattrs.has(name)) no('EEXIST');
    if (flags === 'replace' && !n.xattrs.has(name)) no('ENODATA');
    n.xattrs.add(name);
  }
  removexattr(ino: number, name: string): void {
    if (!this.node(ino).xattrs.delete(name)) no('ENODATA');
  }
  purge(ino: number): void {
    const n = this.node(ino);
    if (n.type === 'dir' || n.nlink > 0) no('EBUSY');
    this.orphans.delete(ino);
    this.byIno.delete(ino);
  }
}

// ---- operations ------------------------------------------------------------------------

const NAMES = ['a', 'b', 'c', 'd', '.', '..', 'x/y'];
const nameArb = fc.oneof({ weight: 12, arbitrary: fc.constantFrom('a', 'b', 'c', 'd') }, { weight: 1, arbitrary: fc.constantFrom(...NAMES) });
const sel = fc.nat({ max: 1000 });
const flagsArb = fc.constantFrom<'none' | 'noreplace' | 'exchange'>('none', 'none', 'noreplace', 'exchange');

type Op =
  | { op: 'create'; p: number; name: string; exclusive: boolean }
  | { op: 'mkdir' | 'symlink' | 'unlink' | 'rmdir'; p: number; name: string }
  | { op: 'link'; i: number; p: number; name: string }
  | { op: 'rename'; sp: number; sn: string; dp: number; dn: string; flags: 'none' | 'noreplace' | 'exchange' }
  | { op: 'truncate'; i: number; size: number }
  | { op: 'setxattr'; i: number; name: string; flags: 'none' | 'create' | 'replace' }
  | { op: 'removexattr'; i: number; name: string }
  | { op: 'purge'; i: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('create' as const), p: sel, name: nameArb, exclusive: fc.boolean() }) },
  { weight: 6, arbitrary: fc.record({ op: fc.constant('mkdir' as const), p: sel, name: nameArb }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('symlink' as const), p: sel, name: nameArb }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('link' as const), i: sel, p: sel, name: nameArb }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('unlink' as const), p: sel, name: nameArb }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('rmdir' as const), p: sel, name: nameArb }) },
  { weight: 10, arbitrary: fc.record({ op: fc.constant('rename' as const), sp: sel, sn: nameArb, dp: sel, dn: nameArb, flags: flagsArb }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('truncate' as const), i: sel, size: fc.constantFrom(0, 1, 4 << 20, (4 << 20) + 1, 3e9) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('setxattr' as const), i: sel, name: fc.constantFrom('user.a', 'user.b'), flags: fc.constantFrom<'none' | 'create' | 'replace'>('none', 'create', 'replace') }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('removexattr' as const), i: sel, name: fc.constantFrom('user.a', 'user.b') }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('purge' as const), i: sel }) },
);

/** Picks an inode by selector: mostly live directories, sometimes any inode or a missing one. */
function pick(m: Model, s: number, dirsOnly: boolean): number {
  const all = [...m.byIno.values()].sort((x, y) => x.ino - y.ino);
  const dirs = all.filter((n) => n.type === 'dir');
  if (s % 17 === 0) return 999_999;
  const pool = dirsOnly && s % 5 !== 0 ? dirs : all;
  return pool[s % pool.length]!.ino;
}

/** Runs `op` on the model and the state machine (and on `twin`, which must answer as `f` does). */
function step(m: Model, f: FsDriver, op: Op, twin?: FsDriver): void {
  let expected: string | number = 0;
  let cmd: [string, Record<string, unknown>];
  let modelIno: number | undefined;
  const run = (fn: () => number | void): void => {
    try {
      const r = fn();
      if (typeof r === 'number') modelIno = r;
    } catch (err) {
      if (!(err instanceof Refused)) throw err;
      expected = err.code;
    }
  };
  switch (op.op) {
    case 'create': {
      const p = pick(m, op.p, true);
      cmd = ['mknod', { parent: p, name: op.name, mode: 0o644, uid: 1, gid: 1, exclusive: op.exclusive }];
      run(() => m.create(p, op.name, op.exclusive));
      break;
    }
    case 'mkdir':
    case 'symlink':
    case 'unlink':
    case 'rmdir': {
      const p = pick(m, op.p, true);
      const extra = op.op === 'mkdir' ? { mode: 0o755, uid: 0, gid: 0 } : op.op === 'symlink' ? { target: 'target', uid: 0, gid: 0 } : {};
      cmd = [op.op, { parent: p, name: op.name, ...extra }];
      run(() => m[op.op](p, op.name));
      break;
    }
    case 'link': {
      const i = pick(m, op.i, false);
      const p = pick(m, op.p, true);
      cmd = ['link', { ino: i, parent: p, name: op.name }];
      run(() => m.link(i, p, op.name));
      break;
    }
    case 'rename': {
      const sp = pick(m, op.sp, true);
      const dp = pick(m, op.dp, true);
      cmd = ['rename', { src_parent: sp, src_name: op.sn, dst_parent: dp, dst_name: op.dn, flags: op.flags }];
      run(() => m.rename(sp, op.sn, dp, op.dn, op.flags));
      break;
    }
    case 'truncate': {
      const i = pick(m, op.i, false);
      cmd = ['setattr', { ino: i, size: op.size }];
      run(() => m.truncate(i, op.size));
      break;
    }
    case 'setxattr': {
      const i = pick(m, op.i, false);
      cmd = ['setxattr', { ino: i, name: op.name, value: 'dmFsdWU=', flags: op.flags }];
      run(() => m.setxattr(i, op.name, op.flags));
      break;
    }
    case 'removexattr': {
      const i = pick(m, op.i, false);
      cmd = ['removexattr', { ino: i, name: op.name }];
      run(() => m.removexattr(i, op.name));
      break;
    }
    case 'purge': {
      const all = [...m.orphans].sort((a, b) => a - b);
      const i = all.length > 0 && op.i % 3 !== 0 ? all[op.i % all.length]! : pick(m, op.i, false);
      cmd = ['purge-inode', { ino: i }];
      run(() => m.purge(i));
      break;
    }
  }
  const before = expected === 0 ? null : snapshotOf(f.state);
  f.d.nowMs++;
  const r = f.run(cmd[0], cmd[1]);
  expect(r.code, `fs ${cmd[0]} ${JSON.stringify(cmd[1])}: ${r.message}`).toBe(expected);
  if (before !== null) expect(snapshotOf(f.state), 'a refusal changes nothing').toEqual(before);
  if (expected === 0 && modelIno !== undefined) expect((r.data as Attr).ino, `fs ${cmd[0]} inode`).toBe(modelIno);
  if (twin !== undefined) {
    twin.d.nowMs = f.d.nowMs;
    expect(twin.run(cmd[0], cmd[1])).toEqual(r);
  }
}

/** The state machine's view of the whole namespace equals the model's. */
function agree(m: Model, f: FsDriver): void {
  let bytes = 0;
  for (const n of m.byIno.values()) {
    const a = f.getattr(n.ino);
    expect(a.type).toBe(n.type);
    expect(f.read<{ names: string[] }>('listxattr', { ino: n.ino }).names).toEqual([...n.xattrs].sort());
    if (n.type === 'dir') {
      const kids = [...n.children].sort(([x], [y]) => (x < y ? -1 : 1));
      // Pages of 2, so the name cursor and the sorted-names memo are exercised after every change.
      const listed: { name: string; ino: number; type: string }[] = [];
      for (let after = ''; ;) {
        const page = f.read<{ entries: { name: string; ino: number; type: string }[]; next: string | null }>('readdir', { ino: n.ino, after, limit: 2 });
        listed.push(...page.entries);
        if (page.next === null) break;
        after = page.next;
      }
      expect(listed).toEqual(kids.map(([name, c]) => ({ name, ino: c.ino, type: c.type })));
      expect(a.nlink, `dir ${n.ino} nlink`).toBe(2 + kids.filter(([, c]) => c.type === 'dir').length);
      expect(a.size).toBe(kids.length);
      expect(f.lookup(n.ino, '..').ino).toBe(n.parent?.ino ?? ROOT);
    } else {
      expect(a.nlink, `inode ${n.ino} nlink`).toBe(n.nlink);
      expect(a.size).toBe(n.size);
      if (n.type === 'file') bytes += n.size;
    }
  }
  expect(f.read('statfs')).toMatchObject({ inodes: m.byIno.size, orphans: m.orphans.size, bytes });
  expect(namespaceErrors(f.state.fsMap.filesystems.get(FS)!)).toEqual([]);
}

describe('filesystem namespace against a tree model', () => {
  it('random operation sequences: the state machine agrees with the model on every result and the whole tree after every step', () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 60 }), (ops) => {
        const m = new Model();
        const f = new FsDriver();
        for (const op of ops) {
          step(m, f, op);
          agree(m, f);
        }
      }),
      { numRuns: 250 },
    );
  });

  it('snapshot → restore gives an equal namespace with identical bytes, which then evolves identically', () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 60 }), fc.array(opArb, { maxLength: 20 }), (ops, more) => {
        const m = new Model();
        const f = new FsDriver();
        for (const op of ops) step(m, f, op);
        const bytes = encodeMonState(f.state);
        const restored = decodeMonState(bytes);
        expect(restored.fsMap).toEqual(f.state.fsMap);
        expect(Buffer.from(encodeMonState(restored)).equals(Buffer.from(bytes))).toBe(true);
        const g = new FsDriver(restored);
        for (const op of more) step(m, f, op, g);
        agree(m, g);
        expect(g.state.fsMap).toEqual(f.state.fsMap);
      }),
      { numRuns: 100 },
    );
  });
});
