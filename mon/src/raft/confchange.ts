/**
 * ConfChange encoding and membership arithmetic (single-server changes, thesis §4.1).
 *
 * Wire/disk format (a versioned struct, CONVENTIONS.md item 4):
 * `struct v1 { u8 type (1 add_voter, 2 add_learner, 3 remove_node), string nodeId, bytes context }`.
 * Saved sample bytes live in mon/test/raft/confchange.test.ts.
 */
import { AspenError, Decoder, Encoder, assert, assertNever } from '@aspen/shared';
import type { ConfChange, ConfState, HardState, NodeId, Snapshot } from './types.ts';

const CONF_CHANGE_VERSION = 1;

function typeCode(t: ConfChange['type']): number {
  switch (t) {
    case 'add_voter':
      return 1;
    case 'add_learner':
      return 2;
    case 'remove_node':
      return 3;
    default:
      return assertNever(t, 'conf change type');
  }
}

/** Encodes a {@link ConfChange} as the `data` of a `conf_change` entry. */
export function encodeConfChange(cc: ConfChange): Uint8Array {
  assert(cc.nodeId.length > 0, 'conf change needs a node id');
  const e = new Encoder(32 + cc.context.length);
  e.struct(CONF_CHANGE_VERSION, 1, (b) => {
    b.u8(typeCode(cc.type));
    b.string(cc.nodeId);
    b.bytes(cc.context);
  });
  const out = e.finish();
  assert(out.length >= 6, 'encoded conf change has a header');
  return out;
}

/**
 * Decodes the `data` of a `conf_change` entry.
 * @throws AspenError E_DECODE on malformed bytes, E_UNSUPPORTED on a too-new encoding.
 */
export function decodeConfChange(data: Uint8Array): ConfChange {
  const d = new Decoder(data);
  const cc = d.struct(CONF_CHANGE_VERSION, 'ConfChange', (b) => {
    const code = b.u8();
    const nodeId = b.string();
    const context = b.bytes().slice();
    let type: ConfChange['type'];
    if (code === 1) type = 'add_voter';
    else if (code === 2) type = 'add_learner';
    else if (code === 3) type = 'remove_node';
    else throw new AspenError('E_DECODE', `unknown conf change type ${code}`);
    if (nodeId.length === 0) throw new AspenError('E_DECODE', 'conf change with an empty node id');
    return { type, nodeId, context };
  });
  d.done('ConfChange');
  return cc;
}

/**
 * The membership after applying `cc` to `cs`. Each change sets one node's role absolutely
 * (voter, learner or absent), so re-applying a suffix of already-applied changes is harmless.
 * A change that would leave no voter is ignored (it is refused at proposal time; ignoring it
 * here keeps every node deterministic if one slipped into the log).
 */
export function applyConfChangeToConfState(cs: ConfState, cc: ConfChange): ConfState {
  const voters = cs.voters.filter((v) => v !== cc.nodeId);
  const learners = cs.learners.filter((v) => v !== cc.nodeId);
  switch (cc.type) {
    case 'add_voter':
      voters.push(cc.nodeId);
      break;
    case 'add_learner':
      learners.push(cc.nodeId);
      break;
    case 'remove_node':
      break;
    default:
      assertNever(cc.type, 'conf change type');
  }
  if (voters.length === 0) return cs;
  const out = { voters: voters.sort(), learners: learners.sort() };
  assert(!out.voters.some((v) => out.learners.includes(v)), 'a node is either voter or learner');
  return out;
}

/** Whether `id` is a voter or learner of `cs`. */
export function isMember(cs: ConfState, id: NodeId): boolean {
  return cs.voters.includes(id) || cs.learners.includes(id);
}

/** The hard state stored next to {@link bootstrapSnapshot} at mkfs: term 1, no vote, commit 1. */
export const BOOTSTRAP_HARD_STATE: HardState = { term: 1, vote: null, commit: 1 };

/**
 * The snapshot every initial member's storage starts from (as `ceph-mon --mkfs`): index 1,
 * term 1, the initial voters, empty state-machine data; store it with `applySnapshot` and
 * {@link BOOTSTRAP_HARD_STATE} with `setHardState`, and start the RawNode with `applied: 1`.
 * All initial members must apply the same one; a mon that joins later starts with empty
 * storage and an empty membership and receives it (or a newer one) from the leader, which is
 * how it learns the membership that precedes its own addition.
 */
export function bootstrapSnapshot(voters: readonly NodeId[]): Snapshot {
  assert(voters.length > 0, 'bootstrap needs at least one voter');
  assert(new Set(voters).size === voters.length, 'bootstrap voters must be distinct');
  return { metadata: { index: 1, term: 1, confState: { voters: [...voters].sort(), learners: [] } }, data: new Uint8Array(0) };
}
