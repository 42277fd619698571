/** A driver for the pure monitor state machine: numbers entries, stamps time, keeps a session. */
import { expect } from 'vitest';
import type { CommandResult, MutatingCommand } from '../../src/core/command.ts';
import { parseCommand } from '../../src/core/command.ts';
import { MonStateMachine, initialMonState, type ApplyEffects } from '../../src/core/state-machine.ts';
import type { MonState } from '../../src/core/state.ts';

export const FSID = '11111111-2222-4333-8444-555555555555';
export const T0 = 1_700_000_000_000;
export const MONS = [{ name: 'a', addr: '127.0.0.1:6789' }, { name: 'b', addr: '127.0.0.1:6790' }, { name: 'c', addr: '127.0.0.1:6791' }];

export const osdUuid = (id: number): string => `00000000-0000-4000-8000-${id.toString(16).padStart(12, '0')}`;

export class Driver {
  readonly sm: MonStateMachine;
  nowMs = T0;
  private seq = 0;
  constructor(state: MonState = initialMonState(FSID, MONS, T0), readonly clientId = 'client-1') {
    this.sm = new MonStateMachine(state);
  }
  get state(): MonState {
    return this.sm.state;
  }
  get map() {
    return this.sm.state.osdMap;
  }
  /** Applies `raw` (validated as the edge does) as the next entry of this driver's session. */
  apply(raw: Record<string, unknown>, o: { clientId?: string; seq?: number } = {}): { result: CommandResult; effects: ApplyEffects } {
    const command: MutatingCommand = parseCommand(raw);
    const seq = o.seq ?? ++this.seq;
    return this.sm.applyCommand(this.sm.state.appliedIndex + 1, { clientId: o.clientId ?? this.clientId, seq, stampMs: this.nowMs, command });
  }
  /** Applies and expects success; returns the result. */
  ok(raw: Record<string, unknown>): CommandResult {
    const { result } = this.apply(raw);
    expect(result.code, `${JSON.stringify(raw)} → ${result.message}`).toBe(0);
    return result;
  }
  /** Applies and expects refusal with `code` (and a message matching `msg`), with no state change. */
  refused(raw: Record<string, unknown>, code: string, msg?: RegExp): CommandResult {
    const epoch = this.map.epoch;
    const { result, effects } = this.apply(raw);
    expect(result.code, `${JSON.stringify(raw)} → ${result.message}`).toBe(code);
    if (msg) expect(result.message).toMatch(msg);
    expect(this.map.epoch).toBe(epoch);
    expect(effects.incrementals).toEqual([]);
    return result;
  }
  /** `osd new` + `osd boot` on host `host` (as an OSD daemon does at start). */
  addOsd(id: number, host: string): void {
    this.ok({ prefix: 'osd new', uuid: osdUuid(id), id });
    this.ok({ prefix: 'osd boot', id, uuid: osdUuid(id), addr: `10.0.0.${id}:6800`, host });
  }
}
