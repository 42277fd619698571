/**
 * A monitor cluster of real `aspen-mon` processes on free loopback ports, for
 * process-level tests (and later for OSD, RBD, S3 and FS tests that need monitors).
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { MonClient } from '@aspen/shared/io/monclient.ts';
import { ProcessHarness, REPO_ROOT, freePorts, tcpConnectable, tsNodeArgs, waitFor } from './harness.ts';

const MON_ENTRY = join(REPO_ROOT, 'mon', 'src', 'bin', 'aspen-mon.ts');

/** Options of {@link MonCluster.start}. */
export interface MonClusterOptions {
  /** Number of initial monitors (named a, b, c, …). */
  count: number;
  /** Extra `aspen-mon` flags for every mon (e.g. `['--snapshot-every', '200']`). */
  extraArgs?: string[];
}

/** A running monitor cluster inside a {@link ProcessHarness}. */
export class MonCluster {
  readonly fsid = randomUUID();
  readonly addrs = new Map<string, string>();
  private readonly clients: MonClient[] = [];

  private constructor(readonly harness: ProcessHarness, private readonly extraArgs: string[]) {}

  /** Creates the stores (`--mkfs`) and starts every monitor; resolves when each listens. */
  static async start(harness: ProcessHarness, o: MonClusterOptions): Promise<MonCluster> {
    const c = new MonCluster(harness, o.extraArgs ?? []);
    const ports = await freePorts(o.count);
    const names = ports.map((_, i) => String.fromCharCode(97 + i));
    names.forEach((n, i) => c.addrs.set(n, `127.0.0.1:${ports[i]}`));
    const members = names.map((n) => `${n}=${c.addrs.get(n)}`).join(',');
    for (const n of names) await c.mkfs(n, ['--initial-members', members]);
    for (const n of names) c.spawn(n);
    for (const n of names) await c.waitListening(n);
    return c;
  }

  /** Runs `aspen-mon --mkfs` for `name` and waits for it to finish. */
  async mkfs(name: string, args: string[]): Promise<void> {
    const p = this.harness.spawn({ name: `mkfs.${name}`, args: tsNodeArgs(MON_ENTRY, ['--mkfs', '--id', name, '--data', this.dataDir(name), '--fsid', this.fsid, ...args]) });
    // (with --join, --fsid is checked against the cluster's)
    const st = await p.exited;
    if (st.code !== 0) throw new Error(`mkfs of mon.${name} failed: ${this.harness.log(`mkfs.${name}`)}`);
  }

  dataDir(name: string): string {
    return this.harness.path(`mon.${name}`);
  }

  /** Starts (or restarts) mon `name`. */
  spawn(name: string): void {
    const addr = this.addrs.get(name);
    if (addr === undefined) throw new Error(`unknown mon ${name}`);
    this.harness.spawn({ name: `mon.${name}`, args: tsNodeArgs(MON_ENTRY, ['--id', name, '--data', this.dataDir(name), '--addr', addr, '--log-level', 'info', ...this.extraArgs]) });
  }

  async waitListening(name: string): Promise<void> {
    const port = Number(this.addrs.get(name)!.split(':')[1]);
    await this.harness.waitReady(`mon.${name}`, tcpConnectable(port), { timeoutMs: 30_000 });
  }

  /** Prepares and starts a new mon `name` that will join with `aspen mon add`. */
  async startJoining(name: string): Promise<string> {
    const [port] = await freePorts(1);
    this.addrs.set(name, `127.0.0.1:${port}`);
    const others = [...this.addrs].filter(([n]) => n !== name).map(([, a]) => a).join(',');
    await this.mkfs(name, ['--join', others]);
    this.spawn(name);
    await this.waitListening(name);
    return this.addrs.get(name)!;
  }

  /** A client of every known mon (closed at teardown by {@link close}). */
  client(timeoutMs = 20_000, only?: string[]): MonClient {
    const addrs = only ? only.map((n) => this.addrs.get(n)!) : [...this.addrs.values()];
    const c = new MonClient({ monAddrs: addrs, fsid: this.fsid, timeoutMs });
    this.clients.push(c);
    return c;
  }

  /** The current leader's name (asks the cluster; waits until one is elected). */
  async leader(timeoutMs = 30_000): Promise<string> {
    const c = this.client(5_000);
    let leader = '';
    await waitFor(async () => {
      try {
        const r = await c.command({ prefix: 'mon stat' });
        leader = String((r.data as { leader: string }).leader);
        return leader !== '' && leader !== 'null';
      } catch {
        return false;
      }
    }, { timeoutMs, what: 'a mon leader' });
    return leader;
  }

  close(): void {
    for (const c of this.clients) c.close();
    this.clients.length = 0;
  }
}
