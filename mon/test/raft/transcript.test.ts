/**
 * Transcript tests (CONVENTIONS.md item 13, after etcd-raft's datadriven testdata): each
 * `testdata/*.txt` is a script of commands, each followed by `----` and the golden output
 * (the messages exchanged and the resulting state). Run with `ASPEN_REWRITE=1` to rewrite the
 * golden output after an intended behaviour change, and review the diff.
 *
 * Commands:
 *   cluster <ids...> [prevote] [checkquorum]   new cluster of bootstrapped voters
 *   campaign <id> | propose <id> <text> | read <id> <ctx> | transfer <from> <to>
 *   conf <id> add_voter|add_learner|remove_node <node>   (join <id> first for a new node)
 *   join <id>                                  a new node with empty storage
 *   isolate <id> | heal | tick <n> | tick-node <id> <n> | restart <id>
 *   status                                     role, term, commit, applied, leader per node
 *   log <id>                                   persisted log: index@term:data
 * Every command except `status` and `log` prints the messages it caused, then stabilizes.
 */
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { AspenError } from '@aspen/shared';
import { Cluster, enc } from './harness.ts';
import type { Message } from '../../src/raft/types.ts';

const DIR = join(dirname(fileURLToPath(import.meta.url)), 'testdata');
const REWRITE = process.env['ASPEN_REWRITE'] === '1';

interface Block {
  /** Comment lines just before the command (kept on rewrite). */
  readonly comments: readonly string[];
  readonly command: string;
  readonly expected: string;
}

function parse(text: string): Block[] {
  const blocks: Block[] = [];
  const lines = text.split('\n');
  let i = 0;
  let comments: string[] = [];
  while (i < lines.length) {
    const line = lines[i]!;
    if (line.startsWith('#')) {
      comments.push(line);
      i++;
      continue;
    }
    if (line.trim() === '') {
      i++;
      continue;
    }
    const command = line.trim();
    i++;
    if (lines[i] !== '----') throw new Error(`expected ---- after "${command}" at line ${i + 1}`);
    i++;
    const out: string[] = [];
    while (i < lines.length && lines[i] !== '') out.push(lines[i++]!);
    blocks.push({ comments, command, expected: out.join('\n') });
    comments = [];
  }
  return blocks;
}

function fmtMessage(m: Message): string {
  const parts = [`${m.from}->${m.to} ${m.type} term=${m.term}`];
  if (m.type === 'MsgApp' || m.type === 'MsgVote' || m.type === 'MsgPreVote') parts.push(`logTerm=${m.logTerm} index=${m.index}`);
  if (m.type === 'MsgAppResp' || m.type === 'MsgReadIndexResp') parts.push(`index=${m.index}`);
  if (m.entries.length > 0) parts.push(`entries=[${m.entries.map((e) => `${e.index}@${e.term}${e.type === 'conf_change' ? ':conf' : e.data.length ? `:${new TextDecoder().decode(e.data)}` : ''}`).join(' ')}]`);
  if (m.type === 'MsgApp' || m.type === 'MsgHeartbeat') parts.push(`commit=${m.commit}`);
  if (m.reject) parts.push(`reject hint=${m.rejectHint}`);
  if (m.snapshot) parts.push(`snapshot=${m.snapshot.metadata.index}@${m.snapshot.metadata.term}`);
  if (m.context.length > 0 && m.type !== 'MsgVote') parts.push(`ctx=${new TextDecoder().decode(m.context)}`);
  return parts.join(' ');
}

function run(blocks: readonly Block[]): string[] {
  let c: Cluster | null = null;
  const need = (): Cluster => {
    if (!c) throw new Error('no cluster: start with `cluster`');
    return c;
  };
  return blocks.map(({ command }) => {
    const [cmd, ...args] = command.split(/\s+/);
    const out: string[] = [];
    const before = c?.sent.length ?? 0;
    const attempt = (f: () => unknown): void => {
      try {
        const r = f();
        if (r !== undefined && r !== null) out.push(`=> ${JSON.stringify(r)}`);
      } catch (e) {
        if (!(e instanceof AspenError)) throw e;
        out.push(`error ${e.code}`);
      }
    };
    switch (cmd) {
      case 'cluster':
        c = new Cluster(
          args.filter((a) => a !== 'prevote' && a !== 'checkquorum'),
          { preVote: args.includes('prevote'), checkQuorum: args.includes('checkquorum') },
        );
        return 'ok';
      case 'campaign':
        need().node(args[0]!).campaign();
        break;
      case 'propose':
        attempt(() => need().node(args[0]!).propose(enc(args[1]!)));
        break;
      case 'read':
        attempt(() => need().node(args[0]!).readIndex(enc(args[1]!)));
        break;
      case 'transfer':
        need().node(args[0]!).transferLeadership(args[1]!);
        break;
      case 'conf':
        attempt(() => need().node(args[0]!).proposeConfChange({ type: args[1] as 'add_voter', nodeId: args[2]!, context: new Uint8Array() }));
        break;
      case 'join':
        need().addNode(args[0]!, null);
        return 'ok';
      case 'isolate':
        need().isolate(args[0]!);
        return 'ok';
      case 'heal':
        need().heal();
        return 'ok';
      case 'restart':
        need().restart(args[0]!);
        return 'ok';
      case 'tick':
        for (let i = 0; i < Number(args[0]); i++) for (const tn of need().nodes.values()) tn.node.tick();
        break;
      case 'tick-node':
        for (let i = 0; i < Number(args[1]); i++) need().node(args[0]!).tick();
        break;
      case 'status':
        return [...need().nodes.values()]
          .map((tn) => {
            const s = tn.node.status();
            const reads = tn.readStates.map((r) => `${new TextDecoder().decode(r.requestCtx)}@${r.index}`);
            return `${s.id}: ${s.role} term=${s.term} commit=${s.commit} applied=${s.applied} lead=${s.lead ?? '-'} voters=${s.confState.voters.join(',')}${s.confState.learners.length ? ` learners=${s.confState.learners.join(',')}` : ''}${reads.length ? ` reads=${reads.join(',')}` : ''}`;
          })
          .join('\n');
      case 'log':
        return need()
          .get(args[0]!)
          .storage.allEntries()
          .map((e) => `${e.index}@${e.term}${e.type === 'conf_change' ? ':conf' : e.data.length ? `:${new TextDecoder().decode(e.data)}` : ''}`)
          .join(' ');
      default:
        throw new Error(`unknown command ${cmd}`);
    }
    const cl = need();
    cl.stabilize();
    for (const m of cl.sent.slice(before)) out.push(`${fmtMessage(m)}${cl.dropped.has(m) ? ' (dropped)' : ''}`);
    return out.length > 0 ? out.join('\n') : 'ok';
  });
}

const files = readdirSync(DIR).filter((f) => f.endsWith('.txt'));

describe('raft transcripts (testdata/*.txt)', () => {
  for (const f of files) {
    it(`${f} matches its golden output`, () => {
      const path = join(DIR, f);
      const text = readFileSync(path, 'utf8');
      const blocks = parse(text);
      const got = run(blocks);
      if (REWRITE) {
        const body = blocks.map((b, i) => `${b.comments.map((l) => `${l}\n`).join('')}${b.command}\n----\n${got[i]}\n`).join('\n');
        writeFileSync(path, body);
        return;
      }
      blocks.forEach((b, i) => expect(got[i], `output of "${b.command}" in ${f}`).toBe(b.expected));
    });
  }
});
