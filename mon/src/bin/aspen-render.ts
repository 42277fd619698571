/**
 * Plain-text rendering of `aspen` replies for people, after Ceph's layouts (`ceph -s`,
 * `ceph osd tree`, `ceph pg dump`). Anything without a layout prints its status message,
 * or its JSON when there is no message.
 */
import Table from 'cli-table3';

type Json = Record<string, unknown>;

const plainTable = (head: string[]): Table.Table =>
  new Table({ head, chars: { top: '', 'top-mid': '', 'top-left': '', 'top-right': '', bottom: '', 'bottom-mid': '', 'bottom-left': '', 'bottom-right': '', left: '', 'left-mid': '', mid: '', 'mid-mid': '', right: '', 'right-mid': '', middle: '  ' }, style: { head: [], border: [], 'padding-left': 0, 'padding-right': 0 } });

/** Bytes as Ceph prints them (`1.5 GiB`). */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

function renderStatus(s: Json): string {
  const health = s.health as { status: string; checks: Record<string, { summary: { message: string } }> };
  const mm = s.monmap as { num_mons: number };
  const om = s.osdmap as { num_osds: number; num_up_osds: number; num_in_osds: number; epoch: number; flags: string[] };
  const pm = s.pgmap as { pgs_by_state: { state_name: string; count: number }[]; num_pgs: number; num_pools: number; num_objects: number; data_bytes: number; recovery_objects_missing: number };
  const quorum = s.quorum_names as string[];
  const lines = ['  cluster:', `    id:     ${String(s.fsid)}`, `    health: ${health.status}`];
  for (const c of Object.values(health.checks)) lines.push(`            ${c.summary.message}`);
  lines.push('', '  services:');
  lines.push(`    mon: ${mm.num_mons} daemons, quorum ${quorum.join(',')} (leader ${String(s.quorum_leader_name)}, term ${String(s.election_epoch)})`);
  lines.push(`    osd: ${om.num_osds} osds: ${om.num_up_osds} up, ${om.num_in_osds} in; epoch: e${om.epoch}${om.flags.length ? `; flags ${om.flags.join(',')}` : ''}`);
  lines.push('', '  data:');
  lines.push(`    pools:   ${pm.num_pools} pools, ${pm.num_pgs} pgs`);
  lines.push(`    objects: ${pm.num_objects} objects, ${formatBytes(pm.data_bytes)}`);
  const states = pm.pgs_by_state.map((p) => `${p.count} ${p.state_name}`);
  lines.push(`    pgs:     ${states.length ? states.join('\n             ') : '0 pgs'}`);
  if (pm.recovery_objects_missing > 0) {
    lines.push('', '  progress:', `    Recovery: ${pm.recovery_objects_missing} objects to recover`);
  }
  return lines.join('\n');
}

function renderTree(t: { nodes: Json[]; stray: Json[] }): string {
  const table = plainTable(['ID', 'CLASS', 'WEIGHT', 'TYPE NAME', 'STATUS', 'REWEIGHT']);
  const byId = new Map(t.nodes.map((n) => [n.id as number, n]));
  const childSet = new Set(t.nodes.flatMap((n) => (n.children as number[] | undefined) ?? []));
  const walk = (id: number, depth: number): void => {
    const n = byId.get(id);
    if (!n) return;
    const isOsd = n.type === 'osd';
    table.push([String(id), String(n.device_class ?? ''), (n.crush_weight as number).toFixed(5), `${'    '.repeat(depth)}${isOsd ? '' : `${String(n.type)} `}${String(n.name)}`, isOsd ? String(n.status) : '', isOsd ? (n.reweight as number).toFixed(5) : '']);
    for (const c of (n.children as number[] | undefined) ?? []) walk(c, depth + 1);
  };
  for (const n of t.nodes) if (!childSet.has(n.id as number)) walk(n.id as number, 0);
  for (const n of t.stray) table.push([String(n.id), '', '0', String(n.name), String(n.status), (n.reweight as number).toFixed(5)]);
  return table.toString();
}

function renderPgDump(d: { pg_stats: Json[] }): string {
  const table = plainTable(['PG', 'OBJECTS', 'BYTES', 'STATE', 'UP', 'UP_PRIMARY', 'ACTING', 'ACTING_PRIMARY']);
  for (const r of d.pg_stats) {
    table.push([String(r.pgid), String(r.num_objects), String(r.num_bytes), String(r.state), `[${(r.up as number[]).join(',')}]`, String(r.up_primary), `[${(r.acting as number[]).join(',')}]`, String(r.acting_primary)]);
  }
  return table.toString();
}

/** Renders a reply of `prefix` for a terminal. */
export function renderPlain(prefix: string, data: unknown, message: string): string {
  switch (prefix) {
    case 'status':
      return renderStatus(data as Json);
    case 'health': {
      const h = data as { status: string; checks: Record<string, { summary: { message: string }; detail?: { message: string }[] }> };
      const lines = [h.status];
      for (const [code, c] of Object.entries(h.checks)) {
        lines.push(`[${code}] ${c.summary.message}`);
        for (const d of c.detail ?? []) lines.push(`    ${d.message}`);
      }
      return lines.join('\n');
    }
    case 'mon stat': {
      const m = data as { epoch: number; num_mons: number; leader: string; quorum: string[]; mons: { name: string; addr: string }[]; election_epoch: number };
      return `e${m.epoch}: ${m.num_mons} mons at {${m.mons.map((x) => `${x.name}=${x.addr}`).join(',')}}, term ${m.election_epoch}, leader ${m.leader}, quorum ${m.quorum.join(',')}`;
    }
    case 'osd tree':
      return renderTree(data as { nodes: Json[]; stray: Json[] });
    case 'osd pool ls':
      return (data as unknown[]).map((p) => (typeof p === 'string' ? p : JSON.stringify(p))).join('\n');
    case 'osd pool get': {
      const { pool: _pool, ...rest } = data as Json;
      return Object.entries(rest).map(([k, v]) => `${k}: ${String(v)}`).join('\n');
    }
    case 'osd erasure-code-profile ls':
      return (data as string[]).join('\n');
    case 'osd erasure-code-profile get':
      return Object.entries(data as Json).map(([k, v]) => `${k}=${String(v)}`).join('\n');
    case 'pg dump':
      return renderPgDump(data as { pg_stats: Json[] });
    case 'fs ls': {
      // As `ceph fs ls` (there is no metadata pool: the metadata lives in the monitors).
      const list = data as { name: string; data_pools: string[] }[];
      return list.length === 0 ? 'No filesystems enabled' : list.map((f) => `name: ${f.name}, data pools: [${f.data_pools.join(' ')} ]`).join('\n');
    }
    case 'fs get':
      return Object.entries(data as Json).map(([k, v]) => `${k}: ${String(v)}`).join('\n');
    default:
      if (message) return message;
      if (data === null || data === undefined || (typeof data === 'object' && Object.keys(data).length === 0)) return '';
      return JSON.stringify(data, null, 2);
  }
}
