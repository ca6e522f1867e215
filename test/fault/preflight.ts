// Whether this machine can run the fault tier (root, network namespaces, iptables); installs iptables with apt-get when it is missing.

import { tryRun } from './shell.js';

export type Preflight = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/** Checks the prerequisites; the reason says what is missing, for a skip message. */
export function preflight(): Preflight {
  if (process.platform !== 'linux') return { ok: false, reason: `needs Linux, not ${process.platform}` };
  if (process.getuid?.() !== 0) return { ok: false, reason: 'needs root (network namespaces and iptables)' };
  if (!tryRun('ip', ['-V']).ok) return { ok: false, reason: 'needs iproute2 (the ip command)' };
  if (!tryRun('iptables', ['-V']).ok) {
    const update = tryRun('apt-get', ['update', '-qq']);
    const install = update.ok ? tryRun('apt-get', ['install', '-y', '-qq', 'iptables']) : update;
    if (!install.ok || !tryRun('iptables', ['-V']).ok) {
      return {
        ok: false,
        reason: `iptables is missing and apt-get could not install it: ${install.stderr.trim()}`,
      };
    }
  }
  const probe = `conclave-fault-probe-${process.pid}`;
  const added = tryRun('ip', ['netns', 'add', probe]);
  if (!added.ok) return { ok: false, reason: `cannot create a network namespace: ${added.stderr.trim()}` };
  try {
    const listed = tryRun('ip', [
      'netns',
      'exec',
      probe,
      'iptables',
      '-A',
      'INPUT',
      '-s',
      '10.0.0.1',
      '-j',
      'DROP',
    ]);
    if (!listed.ok)
      return { ok: false, reason: `iptables does not work in a namespace: ${listed.stderr.trim()}` };
  } finally {
    tryRun('ip', ['netns', 'del', probe]);
  }
  const bridge = `cfprobe${process.pid}`;
  const bridged = tryRun('ip', ['link', 'add', bridge, 'type', 'bridge']);
  tryRun('ip', ['link', 'del', bridge]);
  if (!bridged.ok) return { ok: false, reason: `cannot create a bridge: ${bridged.stderr.trim()}` };
  return { ok: true };
}
