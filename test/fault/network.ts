// A private network for one run: a Linux bridge in the root namespace, one network namespace per node joined to it by a veth pair, and iptables rules inside each namespace for faults.

import { type Cleanup, onCleanup } from './cleanup.js';
import { run, tryRun } from './shell.js';

/** One node's place on the network. */
export interface NetNode {
  readonly index: number;
  /** Its network namespace. */
  readonly ns: string;
  /** The root-namespace end of its veth pair (the other end is `eth0` inside `ns`). */
  readonly veth: string;
  readonly ip: string;
}

/**
 * Addresses are 10.77.S.0/24 with S chosen free at creation; the bridge holds 10.77.S.1 in the
 * root namespace, so clients in the test process reach every node directly, and node i holds
 * 10.77.S.(10 + i) inside its namespace. Names carry the creating pid, so runs never collide.
 * Faults are iptables DROP rules in the nodes' own namespaces (partitions match node addresses
 * only, so clients keep reaching a partitioned node) and `ip link set down` of a node's veth.
 */
export class FaultNetwork {
  readonly nodes: NetNode[] = [];
  readonly bridge: string;
  readonly hostIp: string;
  private readonly subnet: string;
  private readonly cleanup: Cleanup;
  private destroyed = false;

  private constructor(tag: string, subnet: string) {
    this.bridge = `cfb${tag}`;
    this.subnet = subnet;
    this.hostIp = `${subnet}.1`;
    this.cleanup = onCleanup(() => this.teardown());
  }

  /** Creates the bridge and `count` namespaces; everything is removed by destroy() or at exit. */
  static create(count: number, tag: string = String(process.pid)): FaultNetwork {
    const network = new FaultNetwork(tag, freeSubnet());
    try {
      run('ip', ['link', 'add', network.bridge, 'type', 'bridge']);
      run('ip', ['addr', 'add', `${network.hostIp}/24`, 'dev', network.bridge]);
      run('ip', ['link', 'set', network.bridge, 'up']);
      for (let i = 1; i <= count; i++) network.addNode(i, tag);
    } catch (error) {
      network.destroy();
      throw error;
    }
    return network;
  }

  private addNode(index: number, tag: string): void {
    const node: NetNode = {
      index,
      ns: `conclave-fault-${tag}-n${index}`,
      veth: `cfv${tag}n${index}`,
      ip: `${this.subnet}.${10 + index}`,
    };
    this.nodes.push(node);
    run('ip', ['netns', 'add', node.ns]);
    run('ip', ['link', 'add', node.veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', node.ns]);
    run('ip', ['link', 'set', node.veth, 'master', this.bridge, 'up']);
    run('ip', ['-n', node.ns, 'addr', 'add', `${node.ip}/24`, 'dev', 'eth0']);
    run('ip', ['-n', node.ns, 'link', 'set', 'eth0', 'up']);
    run('ip', ['-n', node.ns, 'link', 'set', 'lo', 'up']);
  }

  /** Drops, inside `node`, packets from `from` (INPUT) and to `to` (OUTPUT); replaces its previous rules. */
  setRules(node: NetNode, rules: { from?: readonly NetNode[]; to?: readonly NetNode[] }): void {
    const lines = ['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]'];
    for (const peer of rules.from ?? []) lines.push(`-A INPUT -s ${peer.ip}/32 -j DROP`);
    for (const peer of rules.to ?? []) lines.push(`-A OUTPUT -d ${peer.ip}/32 -j DROP`);
    lines.push('COMMIT', '');
    run('ip', ['netns', 'exec', node.ns, 'iptables-restore'], lines.join('\n'));
  }

  /** Cuts every node of `a` off from every node of `b`, both directions, at both ends. */
  partition(a: readonly NetNode[], b: readonly NetNode[]): void {
    for (const node of a) this.setRules(node, { from: b, to: b });
    for (const node of b) this.setRules(node, { from: a, to: a });
  }

  /** The number of DROP rules in `node`'s namespace (0 once healed). */
  ruleCount(node: NetNode): number {
    const out = run('ip', ['netns', 'exec', node.ns, 'iptables-save', '-t', 'filter']);
    return out.split('\n').filter((line) => line.startsWith('-A ')).length;
  }

  linkDown(node: NetNode): void {
    run('ip', ['link', 'set', node.veth, 'down']);
  }

  linkUp(node: NetNode): void {
    run('ip', ['link', 'set', node.veth, 'up']);
  }

  linkIsUp(node: NetNode): boolean {
    const flags = /<([^>]*)>/.exec(run('ip', ['-o', 'link', 'show', 'dev', node.veth]))?.[1] ?? '';
    return flags.split(',').includes('UP');
  }

  /** Removes every rule and brings every link up. */
  healAll(): void {
    for (const node of this.nodes) {
      this.setRules(node, {});
      this.linkUp(node);
    }
  }

  /** Deletes the namespaces (with their veths and rules) and the bridge. Idempotent. */
  destroy(): void {
    this.cleanup.run();
  }

  private teardown(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const node of this.nodes) {
      tryRun('ip', ['netns', 'exec', node.ns, 'iptables', '-F']);
      tryRun('ip', ['netns', 'del', node.ns]);
      tryRun('ip', ['link', 'del', node.veth]);
    }
    tryRun('ip', ['link', 'del', this.bridge]);
  }
}

/** A 10.77.S.0/24 that no interface of the root namespace uses yet. */
function freeSubnet(): string {
  const used = run('ip', ['-4', '-o', 'addr', 'show']);
  const start = 20 + (process.pid % 200);
  for (let i = 0; i < 230; i++) {
    const candidate = `10.77.${20 + ((start - 20 + i) % 230)}`;
    if (!used.includes(` ${candidate}.`)) return candidate;
  }
  throw new Error('no free 10.77.S.0/24 subnet');
}
