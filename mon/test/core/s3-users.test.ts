/**
 * S3 users and keys in the monitor state (s3-users.ts): create/info/ls/rm, key create/rm,
 * uniqueness of uids and access keys, and survival across a state snapshot.
 */
import { describe, expect, it } from 'vitest';
import { decodeMonState, encodeMonState } from '../../src/core/snapshot.ts';
import { executeRead } from '../../src/core/read-commands.ts';
import { Driver } from './helpers.ts';

const Q = { leader: 'a', quorum: ['a'], term: 1, commitIndex: 1 };
const AK1 = 'AKIAAAAAAAAAAAAAAAA1';
const SK1 = 'c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0';

describe('s3 users in the mon state', () => {
  it('creates users with keys, refuses duplicates, removes keys and users, and keeps them across a snapshot', () => {
    const d = new Driver();
    const created = d.ok({ prefix: 's3 user create', uid: 'alice', display_name: 'Alice', access_key: AK1, secret_key: SK1 });
    expect(created.data).toMatchObject({ user_id: 'alice', display_name: 'Alice', keys: [{ user: 'alice', access_key: AK1, secret_key: SK1 }] });
    d.refused({ prefix: 's3 user create', uid: 'alice', display_name: 'A', access_key: 'AKIAAAAAAAAAAAAAAAA2', secret_key: SK1 }, 'EEXIST');
    d.refused({ prefix: 's3 user create', uid: 'bob', display_name: 'Bob', access_key: AK1, secret_key: SK1 }, 'EEXIST');
    d.ok({ prefix: 's3 user create', uid: 'bob', display_name: 'Bob', access_key: 'AKIAAAAAAAAAAAAAAAA3', secret_key: SK1 });
    d.ok({ prefix: 's3 key create', uid: 'alice', access_key: 'AKIAAAAAAAAAAAAAAAA4', secret_key: SK1 });
    d.refused({ prefix: 's3 key create', uid: 'nobody', access_key: 'AKIAAAAAAAAAAAAAAAA5', secret_key: SK1 }, 'ENOENT');

    const restored = decodeMonState(encodeMonState(d.state));
    expect(executeRead(restored, { prefix: 's3 user ls' }, Q).data).toEqual(['alice', 'bob']);
    expect(executeRead(restored, { prefix: 's3 key get', access_key: 'AKIAAAAAAAAAAAAAAAA4' }, Q).data).toMatchObject({ user_id: 'alice', secret_key: SK1 });
    expect(() => executeRead(restored, { prefix: 's3 user info', uid: 'carol' }, Q)).toThrow(/ENOENT/);

    d.ok({ prefix: 's3 key rm', access_key: AK1 });
    expect(() => executeRead(d.state, { prefix: 's3 key get', access_key: AK1 }, Q)).toThrow(/ENOENT/);
    d.ok({ prefix: 's3 user rm', uid: 'bob' });
    d.refused({ prefix: 's3 user rm', uid: 'bob' }, 'ENOENT');
    expect(executeRead(d.state, { prefix: 's3 user ls' }, Q).data).toEqual(['alice']);
  });

  it('validates uids and keys at the edge', () => {
    const d = new Driver();
    expect(() => d.apply({ prefix: 's3 user create', uid: 'a b', display_name: 'x', access_key: AK1, secret_key: SK1 })).toThrow(/EINVAL/);
    expect(() => d.apply({ prefix: 's3 user create', uid: 'ab', display_name: 'x', access_key: 'short', secret_key: SK1 })).toThrow(/EINVAL/);
  });
});
