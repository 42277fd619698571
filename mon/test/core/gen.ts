/** fast-check generators of monitor commands over a small name space, so that they collide. */
import fc from 'fast-check';
import { osdUuid } from './helpers.ts';

/** A random command (valid per the schema; often refused by the state machine). */
export const cmdArb: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  fc.record({ prefix: fc.constant('osd new'), uuid: fc.nat({ max: 6 }).map(osdUuid) }),
  fc.record({ prefix: fc.constant('osd new'), uuid: fc.nat({ max: 6 }).map(osdUuid), id: fc.nat({ max: 6 }) }),
  fc.nat({ max: 6 }).chain((id) => fc.record({
    prefix: fc.constant('osd boot'), id: fc.constant(id), uuid: fc.constant(osdUuid(id)), addr: fc.nat({ max: 2 }).map((p) => `10.0.0.${id}:${6800 + p}`), host: fc.nat({ max: 3 }).map((h) => `host${h}`),
  })),
  fc.record({ prefix: fc.constantFrom('osd down', 'osd out', 'osd in', 'osd rm'), ids: fc.array(fc.nat({ max: 6 }), { minLength: 1, maxLength: 2 }) }),
  fc.record({ prefix: fc.constant('osd out'), ids: fc.array(fc.nat({ max: 6 }), { minLength: 1, maxLength: 2 }), auto: fc.constant(true) }),
  fc.record({ prefix: fc.constant('osd reweight'), id: fc.nat({ max: 6 }), weight: fc.constantFrom(0, 0.25, 1) }),
  fc.record({ prefix: fc.constant('osd crush reweight'), id: fc.nat({ max: 6 }), weight: fc.constantFrom(0.5, 2, 30_000, 70_000, 1e6) }),
  fc.record({ prefix: fc.constantFrom('osd set', 'osd unset'), key: fc.constantFrom('noout', 'noup', 'nodown') }),
  fc.record({ prefix: fc.constant('osd pool create'), pool: fc.constantFrom('rbd', 'data', 'ec'), pg_num: fc.constantFrom(1, 4, 8) }),
  fc.record({ prefix: fc.constant('osd pool create'), pool: fc.constantFrom('ec', 'ec2', 'replicated_rule'), pool_type: fc.constant('erasure'), erasure_code_profile: fc.constantFrom('default', 'k3m2') }),
  fc.record({ prefix: fc.constant('osd pool create'), pool: fc.constantFrom('rbd', 'r2'), pg_num: fc.constant(4), crush_rule: fc.nat({ max: 2 }) }),
  fc.record({ prefix: fc.constant('osd pool set'), pool: fc.constantFrom('rbd', 'ec', 'data'), var: fc.constant('crush_rule'), val: fc.constantFrom('replicated_rule', 'ec', '0', '1') }),
  fc.record({ prefix: fc.constant('osd pool set'), pool: fc.constantFrom('rbd', 'ec'), var: fc.constant('pgp_num'), val: fc.constantFrom('1', '4', '8') }),
  fc.record({ prefix: fc.constant('osd pool rm'), pool: fc.constantFrom('rbd', 'data', 'ec'), yes_i_really_really_mean_it: fc.boolean() }).map((c) => ({ ...c, pool2: c.pool })),
  fc.record({ prefix: fc.constant('osd pool rename'), srcpool: fc.constantFrom('rbd', 'data'), destpool: fc.constantFrom('data', 'ec', 'x') }),
  fc.record({ prefix: fc.constant('osd pool set'), pool: fc.constantFrom('rbd', 'ec'), var: fc.constantFrom('size', 'min_size', 'pg_num'), val: fc.constantFrom('1', '2', '3', '16') }),
  fc.record({ prefix: fc.constant('osd pool application enable'), pool: fc.constantFrom('rbd', 'data'), app: fc.constantFrom('rbd', 'rgw') }),
  fc.record({ prefix: fc.constant('osd pool selfmanaged-snap create'), pool: fc.constantFrom('rbd', 'ec') }),
  fc.record({ prefix: fc.constant('osd pool selfmanaged-snap rm'), pool: fc.constantFrom('rbd', 'ec'), snapid: fc.nat({ max: 4 }) }),
  fc.record({ prefix: fc.constant('osd full'), id: fc.nat({ max: 6 }), full: fc.boolean(), nearfull: fc.boolean() }),
  fc.record({ prefix: fc.constant('osd erasure-code-profile set'), name: fc.constant('k3m2'), profile: fc.constantFrom(['k=3', 'm=2'], ['k=2', 'm=2']), force: fc.boolean() }),
  fc.record({ prefix: fc.constant('osd erasure-code-profile rm'), name: fc.constantFrom('k3m2', 'default') }),
  fc.record({ prefix: fc.constant('osd pg-temp'), pgid: fc.constantFrom('1.0', '2.3'), osds: fc.array(fc.nat({ max: 6 }), { maxLength: 2 }) }),
  fc.record({
    prefix: fc.constant('pg stats'), osd: fc.nat({ max: 6 }), epoch: fc.nat({ max: 40 }),
    pgs: fc.array(fc.record({ pgid: fc.constantFrom('1.0', '1.3', '2.0', '3.1'), state: fc.constantFrom('active+clean', 'peering', 'active+undersized+degraded'), up: fc.constant([0]), acting: fc.constant([0]), num_objects: fc.nat({ max: 9 }), num_bytes: fc.nat({ max: 999 }) }), { maxLength: 3 }),
  }),
  fc.record({ prefix: fc.constant('config set'), who: fc.constantFrom('mon', 'osd', 'global'), name: fc.constantFrom('mon_allow_pool_delete', 'osd_pool_default_size', 'osd_pool_default_pg_num', 'osd_pool_default_min_size'), value: fc.constantFrom('true', '2', '3', '-5', '0', '1.5', '300') }),
  fc.record({ prefix: fc.constant('config rm'), who: fc.constantFrom('mon', 'osd'), name: fc.constant('mon_allow_pool_delete') }),
  // Filesystems over the same pools (a pool a filesystem uses cannot be removed).
  fc.record({ prefix: fc.constant('fs new'), fs_name: fc.constantFrom('fs1', 'fs2', 'fs3'), data_pool: fc.constantFrom('rbd', 'data', 'ec') }),
  fc.record({ prefix: fc.constant('fs rm'), fs_name: fc.constantFrom('fs1', 'fs2'), yes_i_really_mean_it: fc.boolean(), force: fc.boolean() }),
  fc.record({ prefix: fc.constantFrom('fs mkdir', 'fs mknod'), fs_name: fc.constantFrom('fs1', 'fs2'), parent: fc.constantFrom(1, 2, 3), name: fc.constantFrom('a', 'b'), mode: fc.constant(0o755), uid: fc.constant(0), gid: fc.constant(0) }),
  fc.record({ prefix: fc.constant('fs rename'), fs_name: fc.constantFrom('fs1', 'fs2'), src_parent: fc.constantFrom(1, 2, 3), src_name: fc.constantFrom('a', 'b'), dst_parent: fc.constantFrom(1, 2, 3), dst_name: fc.constantFrom('a', 'b'), flags: fc.constantFrom('none', 'exchange') }),
  fc.record({ prefix: fc.constantFrom('fs unlink', 'fs rmdir'), fs_name: fc.constantFrom('fs1', 'fs2'), parent: fc.constantFrom(1, 2, 3), name: fc.constantFrom('a', 'b') }),
);
