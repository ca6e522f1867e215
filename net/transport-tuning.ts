// Two corrections to libp2p's stack that cut the syscalls and encryptions per raft round: one socket write per encrypted message, yamux window updates at half a window.

/*
 * Measured with strace on the leader of a 3-node cluster under one sequential writer: 16
 * socket writes per put on the leader before, 4 with both (the CPU change was within this
 * machine's run-to-run noise; see issue 15's notes). The mesh installs both. The first makes
 * handshakes faster, and with it members dialing each other at once often lose one connection
 * mid-hello; the mesh counts that as an interrupted hello, not a stranger.
 *
 * 1. @chainsafe/libp2p-noise 17 hands the transport each encrypted message as a list of two
 *    buffers (its 2-byte length and the ciphertext), and @libp2p/tcp 11 writes every buffer of
 *    a list with its own socket.write(): two syscalls, and two TCP segments on the wire, per
 *    message. coalescingEncrypter() wraps the encrypter so that the connection it is handed
 *    joins a list into one buffer before the transport sees it (a copy of a few hundred bytes
 *    costs far less than a loopback write, which runs the receiver's TCP stack inline).
 *
 * 2. @chainsafe/libp2p-yamux 8 sends a window update after every data frame it receives (its
 *    test `recvWindowCapacity >= recvWindow` fails as soon as one byte was consumed), so each
 *    raft frame costs the peer one more encrypted frame back. Yamux's specification and its
 *    reference implementation (hashicorp/yamux) update only once half the window is consumed;
 *    halfWindowUpdates() makes libp2p's stream do the same. The sender still has at least half
 *    a window (128 KiB and up) to send into meanwhile, and pause/resume keeps its meaning:
 *    a paused stream sends no update, and resume() sends one if half the window is used.
 *
 * Both rely only on public exports (the ConnectionEncrypter factory, AbstractMessageStream's
 * `sendData`, yamux's `./stream` export) and check what they patch: if a dependency upgrade
 * changes it, the patch is skipped with a warning and libp2p behaves as shipped.
 */

import { StreamState, YamuxStream } from '@chainsafe/libp2p-yamux/stream';
import type { ConnectionEncrypter, MessageStream } from '@libp2p/interface';
import { AbstractMessageStream, type SendResult } from '@libp2p/utils';
import { Uint8ArrayList } from 'uint8arraylist';
import type { Logger } from './log.js';

type EncrypterFactory<C> = (components: C) => ConnectionEncrypter;

interface Sender {
  sendData(data: Uint8ArrayList): SendResult;
}

const COALESCED = Symbol('conclave.coalescedWrites');

/**
 * Makes `connection` (the raw transport connection an encrypter is handed) write each message
 * it is asked to send as one buffer. Returns the same object. Connections that are not
 * libp2p's AbstractMessageStream are returned untouched.
 */
export function coalesceWrites<T extends MessageStream>(connection: T): T {
  if (!(connection instanceof AbstractMessageStream)) return connection;
  const target = connection as unknown as Sender & { [COALESCED]?: true };
  if (target[COALESCED]) return connection;
  const sendData = target.sendData.bind(connection);
  // subarray() of the whole list returns its only buffer as it is, or the buffers joined.
  target.sendData = (data: Uint8ArrayList): SendResult => sendData(new Uint8ArrayList(data.subarray()));
  target[COALESCED] = true;
  return connection;
}

/** Wraps an encrypter factory (noise()) so that every connection it secures has coalesced writes. */
export function coalescingEncrypter<C>(factory: EncrypterFactory<C>): EncrypterFactory<C> {
  return (components: C) => {
    const encrypter = factory(components);
    const secureInbound = encrypter.secureInbound.bind(encrypter);
    const secureOutbound = encrypter.secureOutbound.bind(encrypter);
    encrypter.secureInbound = (connection, options) => secureInbound(coalesceWrites(connection), options);
    encrypter.secureOutbound = (connection, options) => secureOutbound(coalesceWrites(connection), options);
    return encrypter;
  };
}

/** The fields of libp2p-yamux 8's stream the window policy reads (private in its typings). */
interface YamuxWindow {
  state: number;
  recvWindow: number;
  recvWindowCapacity: number;
}

let halfWindowInstalled: boolean | undefined;

/**
 * Installs the half-window update policy on libp2p-yamux's stream class, once per process.
 * Returns whether it is in effect; logs a warning (once) if the installed yamux does not look
 * like the version it was written for.
 */
export function halfWindowUpdates(logger: Logger): boolean {
  if (halfWindowInstalled !== undefined) return halfWindowInstalled;
  const prototype = YamuxStream.prototype as unknown as { sendWindowUpdate?: () => void };
  const original = prototype.sendWindowUpdate;
  if (typeof original !== 'function') {
    logger.warn('yamux_window_policy_skipped', { reason: 'YamuxStream has no sendWindowUpdate method' });
    halfWindowInstalled = false;
    return false;
  }
  prototype.sendWindowUpdate = function sendWindowUpdateAtHalf(this: YamuxWindow) {
    // Only the steady state is deferred: opening (SYN/ACK flags) and paused streams take the
    // original path, as does any stream whose fields are not what this was written for.
    if (
      this.state === StreamState.Established &&
      typeof this.recvWindowCapacity === 'number' &&
      typeof this.recvWindow === 'number' &&
      this.recvWindowCapacity > this.recvWindow / 2
    ) {
      return;
    }
    original.call(this);
  };
  halfWindowInstalled = true;
  return true;
}
