/**
 * Rule steps compiled to integer triples `(op, arg1, arg2)` with Ceph's `CRUSH_RULE_*`
 * opcodes (src/crush/crush.h), as `crush_do_rule` reads them. A `take … class C` step is
 * resolved here to the shadow bucket id of its item for class C.
 */
import type { CrushRuleStep } from './types.ts';

// Compiled step opcodes (Ceph's CRUSH_RULE_* values).
export const OP_NOOP = 0;
export const OP_TAKE = 1;
export const OP_CHOOSE_FIRSTN = 2;
export const OP_CHOOSE_INDEP = 3;
export const OP_EMIT = 4;
export const OP_CHOOSELEAF_FIRSTN = 6;
export const OP_CHOOSELEAF_INDEP = 7;
export const OP_SET_CHOOSE_TRIES = 8;
export const OP_SET_CHOOSELEAF_TRIES = 9;
export const OP_SET_CHOOSE_LOCAL_TRIES = 10;
export const OP_SET_CHOOSE_LOCAL_FALLBACK_TRIES = 11;
export const OP_SET_CHOOSELEAF_VARY_R = 12;
export const OP_SET_CHOOSELEAF_STABLE = 13;
/** A take whose item (or class shadow) does not exist: Ceph ignores it ("bad take value"). */
const BAD_TAKE = 0x7ffffff0;

/** Compiles one step; `classIdOf` finds the shadow bucket of an item for a class. */
export function stepCode(step: CrushRuleStep, classIdOf: (item: number, cls: string) => number | undefined): [number, number, number] {
  switch (step.op) {
    case 'noop':
      return [OP_NOOP, 0, 0];
    case 'take':
      if (step.deviceClass === undefined) return [OP_TAKE, step.item, 0];
      return [OP_TAKE, classIdOf(step.item, step.deviceClass) ?? BAD_TAKE, 0];
    case 'choose_firstn':
      return [OP_CHOOSE_FIRSTN, step.num, step.typeId];
    case 'choose_indep':
      return [OP_CHOOSE_INDEP, step.num, step.typeId];
    case 'chooseleaf_firstn':
      return [OP_CHOOSELEAF_FIRSTN, step.num, step.typeId];
    case 'chooseleaf_indep':
      return [OP_CHOOSELEAF_INDEP, step.num, step.typeId];
    case 'emit':
      return [OP_EMIT, 0, 0];
    case 'set_choose_tries':
      return [OP_SET_CHOOSE_TRIES, step.value, 0];
    case 'set_chooseleaf_tries':
      return [OP_SET_CHOOSELEAF_TRIES, step.value, 0];
    case 'set_choose_local_tries':
      return [OP_SET_CHOOSE_LOCAL_TRIES, step.value, 0];
    case 'set_choose_local_fallback_tries':
      return [OP_SET_CHOOSE_LOCAL_FALLBACK_TRIES, step.value, 0];
    case 'set_chooseleaf_vary_r':
      return [OP_SET_CHOOSELEAF_VARY_R, step.value, 0];
    case 'set_chooseleaf_stable':
      return [OP_SET_CHOOSELEAF_STABLE, step.value, 0];
  }
}
