/** A driver for filesystem commands on the pure monitor state machine (helpers.ts's Driver). */
import { expect } from 'vitest';
import type { CommandResult } from '../../src/core/command.ts';
import { executeRead } from '../../src/core/read-commands.ts';
import type { MonState } from '../../src/core/state.ts';
import { Driver } from './helpers.ts';

export const Q = { leader: 'a', quorum: ['a'], term: 1, commitIndex: 1 };
export const FS = 'cephfs';
export const ROOT = 1;

/** The attributes commands return. */
export interface Attr {
  ino: number;
  type: 'file' | 'dir' | 'symlink';
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  size: number;
  atime_ns: string;
  mtime_ns: string;
  ctime_ns: string;
  object_size: number;
}

let drivers = 0;

export class FsDriver {
  readonly d: Driver;
  constructor(state?: MonState, withFs = true) {
    // A driver over a restored state is another client: its seqs must not hit the first one's session.
    this.d = new Driver(state, state === undefined ? 'client-1' : `client-restored-${++drivers}`);
    if (state === undefined && withFs) {
      this.d.ok({ prefix: 'osd pool create', pool: 'data', pg_num: 8 });
      this.d.ok({ prefix: 'fs new', fs_name: FS, data_pool: 'data' });
    }
  }
  get state(): MonState {
    return this.d.state;
  }
  /** Applies `fs <op>` on {@link FS}; returns the result (success or refusal). */
  run(op: string, args: Record<string, unknown>): CommandResult {
    return this.d.apply({ prefix: `fs ${op}`, fs_name: FS, ...args }).result;
  }
  ok<T = Attr>(op: string, args: Record<string, unknown>): T {
    const r = this.run(op, args);
    expect(r.code, `fs ${op} ${JSON.stringify(args)} → ${r.message}`).toBe(0);
    return r.data as T;
  }
  /** Expects refusal with `code` and no change to the filesystem state. */
  refused(op: string, args: Record<string, unknown>, code: string): void {
    const before = snapshotOf(this.state);
    const r = this.run(op, args);
    expect(r.code, `fs ${op} ${JSON.stringify(args)} → ${r.message}`).toBe(code);
    expect(snapshotOf(this.state), 'a refusal changes nothing').toEqual(before);
  }
  read<T = Attr>(op: string, args: Record<string, unknown> = {}): T {
    return executeRead(this.state, { prefix: `fs ${op}`, fs_name: FS, ...args }, Q).data as T;
  }
  readErr(op: string, args: Record<string, unknown>): string {
    try {
      executeRead(this.state, { prefix: `fs ${op}`, fs_name: FS, ...args }, Q);
    } catch (err) {
      return (err as { code: string }).code;
    }
    return 'no error';
  }
  mkdir(parent: number, name: string, mode = 0o755): Attr {
    return this.ok('mkdir', { parent, name, mode, uid: 0, gid: 0 });
  }
  create(parent: number, name: string, mode = 0o644): Attr {
    return this.ok('mknod', { parent, name, mode, uid: 1000, gid: 1000 });
  }
  getattr(ino: number): Attr {
    return this.read('getattr', { ino });
  }
  lookup(parent: number, name: string): Attr {
    return this.read('lookup', { parent, name });
  }
  names(ino: number): string[] {
    return this.read<{ entries: { name: string }[] }>('readdir', { ino, limit: 4096 }).entries.map((e) => e.name);
  }
}

/** A deep copy of the filesystem part of the state, for before/after comparisons. */
export function snapshotOf(s: MonState): unknown {
  return structuredClone(s.fsMap);
}
