// A bare libp2p node for the tests: a stranger, or a member that proves the secret and then misbehaves.

import '../../net/polyfill.js';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import type { Connection, Stream } from '@libp2p/interface';
import { tcp } from '@libp2p/tcp';
import { multiaddr } from '@multiformats/multiaddr';
import { createLibp2p, type Libp2p } from 'libp2p';
import type { ChannelCounters } from '../../net/channel.js';
import { helloAsDialer } from '../../net/hello.js';
import { silentLogger } from '../../net/log.js';
import { PROTOCOLS } from '../../net/mesh.js';
import type { ClusterSecret } from '../../net/secret.js';
import { newKey } from './helpers.js';

/** A started libp2p node with Conclave's transport stack and none of its protocols. */
export async function rogueNode(): Promise<Libp2p> {
  return createLibp2p({
    privateKey: await newKey(),
    addresses: { listen: [] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionMonitor: { enabled: false },
  });
}

/** Dials `address`; with a secret, proves it through the hello as a member would. */
export async function rogueConnect(
  node: Libp2p,
  address: string,
  secret?: ClusterSecret,
): Promise<Connection> {
  const connection = await node.dial(multiaddr(address), { signal: AbortSignal.timeout(5_000) });
  if (secret !== undefined) {
    const counters: ChannelCounters = {
      framesReceived: 0,
      framesSent: 0,
      bytesReceived: 0,
      bytesSent: 0,
      framesRejected: 0,
    };
    const stream = await connection.newStream(PROTOCOLS.hello, { signal: AbortSignal.timeout(5_000) });
    await helloAsDialer({
      stream,
      secret,
      localPeer: node.peerId.toString(),
      remotePeer: connection.remotePeer.toString(),
      timeoutMs: 5_000,
      logger: silentLogger,
      counters,
    });
  }
  return connection;
}

/** Opens `protocol` and writes `bytes` raw (no framing added). */
export async function writeRaw(connection: Connection, protocol: string, bytes: Uint8Array): Promise<Stream> {
  const stream = await connection.newStream(protocol, { signal: AbortSignal.timeout(5_000) });
  stream.send(bytes);
  return stream;
}

/** A length prefix announcing `length` bytes. */
export function lengthPrefix(length: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, length);
  return out;
}
