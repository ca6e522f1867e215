// The authenticated hello: both ends of a new connection prove they hold the cluster secret.
//
// Runs on its own stream right after Noise has authenticated both peer ids:
//   dialer   → listener  HelloInit   version, nonceD
//   listener → dialer    HelloReply  nonceL, proofL = HMAC(secret, "listener" ‖ transcript)
//   dialer   → listener  HelloProof  proofD = HMAC(secret, "dialer" ‖ transcript)
//   listener → dialer    HelloAccept
// transcript = protocol label ‖ dialer peer id ‖ listener peer id ‖ nonceD ‖ nonceL.
// Fresh nonces from both sides stop replays; the peer ids (already proved by Noise) stop a
// member's proof from being relayed onto another connection. The listener proves first, so a
// dialer learns a stranger is one before revealing anything derived from the secret to it.
//
// Versions: `version` is the highest protocol version the dialer speaks. A dialer that also
// speaks older ones (its lowest below its highest) appends its lowest to HelloInit, and the
// listener then appends its own lowest and highest to HelloReply; without that extension both
// frames are exactly as version 1 wrote them, so nodes of the first build and later ones that
// speak version 1 still meet. Each side refuses (reason `version`, the ranges named) when the
// two ranges do not overlap; otherwise the connection speaks the higher version both know.

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Stream } from '@libp2p/interface';
import { type ChannelCounters, FramedChannel } from './channel.js';
import { MalformedFrameError, NetError } from './errors.js';
import { FrameKind, frame } from './framing.js';
import type { Logger } from './log.js';
import type { ClusterSecret } from './secret.js';
import { Reader, Writer } from './wire.js';

/** The highest protocol version this build speaks, and the lowest it still speaks. */
export const HELLO_VERSION = 1;
export const HELLO_MIN_VERSION = 1;

/** The protocol versions a node speaks: [min, max]. */
export interface VersionRange {
  readonly min: number;
  readonly max: number;
}

export const THIS_BUILD: VersionRange = Object.freeze({ min: HELLO_MIN_VERSION, max: HELLO_VERSION });

/** The version two ranges share (the higher), or undefined when they do not overlap. */
export function sharedVersion(a: VersionRange, b: VersionRange): number | undefined {
  const version = Math.min(a.max, b.max);
  return version >= Math.max(a.min, b.min) ? version : undefined;
}

function describeRange(range: VersionRange): string {
  return range.min === range.max ? `version ${range.max}` : `versions ${range.min}-${range.max}`;
}
const NONCE_BYTES = 32;
const PROOF_BYTES = 32;
const TRANSCRIPT_LABEL = 'conclave-hello-v1';
const MAX_HELLO_FRAME_BYTES = 256;

/** Why a hello failed; stable names used in logs and counters. */
export type HelloFailureReason = 'timeout' | 'bad_proof' | 'malformed' | 'closed' | 'version';

/** The remote did not prove the secret (or the exchange broke): the connection must be closed. */
export class HelloError extends NetError {
  readonly reason: HelloFailureReason;

  constructor(reason: HelloFailureReason, detail: string) {
    super('UNAUTHENTICATED', `hello failed (${reason}): ${detail}`);
    this.name = 'HelloError';
    this.reason = reason;
  }
}

export interface HelloInit {
  readonly stream: Stream;
  readonly secret: ClusterSecret;
  readonly localPeer: string;
  readonly remotePeer: string;
  readonly timeoutMs: number;
  readonly logger: Logger;
  readonly counters: ChannelCounters;
  /**
   * Listener only: called synchronously once the dialer's proof checks and before the accept
   * is sent, so the connection counts as authenticated before the dialer can open a stream.
   */
  readonly onVerified?: () => void;
  /** The protocol versions this node speaks (THIS_BUILD unless a test says otherwise). */
  readonly versions?: VersionRange;
}

/** Runs the dialer's side; resolves once the listener has accepted, throws HelloError otherwise. */
export async function helloAsDialer(init: HelloInit): Promise<void> {
  const exchange = new FrameExchange(init);
  try {
    const ours = init.versions ?? THIS_BUILD;
    const extended = ours.min < ours.max;
    const nonceD = randomBytes(NONCE_BYTES);
    const hello = new Writer(64).uint8(FrameKind.HelloInit).varint(ours.max).raw(nonceD);
    exchange.send((extended ? hello.varint(ours.min) : hello).finish());
    const reply = new Reader(await exchange.next());
    expectKind(reply, FrameKind.HelloReply);
    const nonceL = reply.raw('nonce', NONCE_BYTES);
    const proofL = reply.raw('proof', PROOF_BYTES);
    if (extended) {
      const theirs = { min: reply.varint('min version'), max: reply.varint('version') };
      if (sharedVersion(ours, theirs) === undefined) {
        throw new HelloError(
          'version',
          `${init.remotePeer} speaks protocol ${describeRange(theirs)}; this node speaks ${describeRange(ours)}`,
        );
      }
    }
    reply.expectEnd('hello reply');
    const transcript = transcriptOf(init.localPeer, init.remotePeer, nonceD, nonceL);
    if (!proofMatches(init.secret, 'listener', transcript, proofL)) {
      throw new HelloError('bad_proof', `${init.remotePeer} does not hold the cluster secret`);
    }
    exchange.send(
      new Writer(64)
        .uint8(FrameKind.HelloProof)
        .raw(proofOf(init.secret, 'dialer', transcript))
        .finish(),
    );
    const accept = new Reader(await exchange.next());
    expectKind(accept, FrameKind.HelloAccept);
    accept.expectEnd('hello accept');
    await exchange.close();
  } catch (err) {
    exchange.abort();
    throw asHelloError(err);
  }
}

/** Runs the listener's side; resolves once the dialer's proof checks, throws HelloError otherwise. */
export async function helloAsListener(init: HelloInit): Promise<void> {
  const exchange = new FrameExchange(init);
  try {
    const hello = new Reader(await exchange.next());
    expectKind(hello, FrameKind.HelloInit);
    const ours = init.versions ?? THIS_BUILD;
    const version = hello.varint('version');
    const nonceD = hello.raw('nonce', NONCE_BYTES);
    const extended = !hello.atEnd();
    const theirs = { min: extended ? hello.varint('min version') : version, max: version };
    hello.expectEnd('hello init');
    if (theirs.min > theirs.max || sharedVersion(ours, theirs) === undefined) {
      throw new HelloError(
        'version',
        `${init.remotePeer} speaks protocol ${describeRange(theirs)}; this node speaks ${describeRange(ours)}`,
      );
    }
    const nonceL = randomBytes(NONCE_BYTES);
    const transcript = transcriptOf(init.remotePeer, init.localPeer, nonceD, nonceL);
    const reply = new Writer(128)
      .uint8(FrameKind.HelloReply)
      .raw(nonceL)
      .raw(proofOf(init.secret, 'listener', transcript));
    exchange.send((extended ? reply.varint(ours.min).varint(ours.max) : reply).finish());
    const proof = new Reader(await exchange.next());
    expectKind(proof, FrameKind.HelloProof);
    const proofD = proof.raw('proof', PROOF_BYTES);
    proof.expectEnd('hello proof');
    if (!proofMatches(init.secret, 'dialer', transcript, proofD)) {
      throw new HelloError('bad_proof', `${init.remotePeer} does not hold the cluster secret`);
    }
    init.onVerified?.();
    exchange.send(new Uint8Array([FrameKind.HelloAccept]));
    await exchange.close();
  } catch (err) {
    exchange.abort();
    throw asHelloError(err);
  }
}

function transcriptOf(dialer: string, listener: string, nonceD: Uint8Array, nonceL: Uint8Array): Uint8Array {
  return new Writer(256)
    .string(TRANSCRIPT_LABEL)
    .string(dialer)
    .string(listener)
    .raw(nonceD)
    .raw(nonceL)
    .finish();
}

function proofOf(secret: ClusterSecret, role: 'dialer' | 'listener', transcript: Uint8Array): Uint8Array {
  return createHmac('sha256', secret.key).update(role).update(transcript).digest();
}

function proofMatches(
  secret: ClusterSecret,
  role: 'dialer' | 'listener',
  transcript: Uint8Array,
  proof: Uint8Array,
): boolean {
  const expected = proofOf(secret, role, transcript);
  return proof.length === expected.length && timingSafeEqual(proof, expected);
}

function expectKind(reader: Reader, kind: FrameKind): void {
  const got = reader.uint8('frame kind');
  if (got !== kind) throw new MalformedFrameError(`expected hello frame ${FrameKind[kind]}, got kind ${got}`);
}

function asHelloError(err: unknown): HelloError {
  if (err instanceof HelloError) return err;
  if (err instanceof MalformedFrameError) return new HelloError('malformed', err.reason);
  return new HelloError('closed', err instanceof Error ? err.message : String(err));
}

/** Sequential frames over the hello stream, every wait bounded by the hello's one deadline. */
class FrameExchange {
  private readonly channel: FramedChannel;
  private readonly frames: Uint8Array[] = [];
  private waiter: { resolve: (frame: Uint8Array) => void; reject: (err: Error) => void } | undefined;
  private failure: Error | undefined;
  private readonly timer: NodeJS.Timeout;

  constructor(init: HelloInit) {
    this.channel = new FramedChannel({
      stream: init.stream,
      peer: init.remotePeer,
      protocol: 'hello',
      maxFrameBytes: MAX_HELLO_FRAME_BYTES,
      highWaterBytes: 64 * 1024,
      maxReadBufferBytes: 64 * 1024,
      logger: init.logger,
      counters: init.counters,
      onFrame: (payload) => {
        if (this.frames.length >= 4) throw new MalformedFrameError('too many hello frames');
        this.frames.push(payload);
        this.wake();
      },
      onClose: (reason) => this.fail(new HelloError('closed', `hello stream closed: ${reason}`)),
    });
    this.timer = setTimeout(
      () => this.fail(new HelloError('timeout', `no complete hello within ${init.timeoutMs} ms`)),
      init.timeoutMs,
    );
    this.timer.unref();
  }

  send(payload: Uint8Array): void {
    if (this.failure !== undefined) throw this.failure;
    this.channel.send(frame(payload));
  }

  next(): Promise<Uint8Array> {
    const ready = this.frames.shift();
    if (ready !== undefined) return Promise.resolve(ready);
    if (this.failure !== undefined) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  async close(): Promise<void> {
    clearTimeout(this.timer);
    await this.channel.close('hello done');
  }

  abort(): void {
    clearTimeout(this.timer);
    this.channel.abort('hello failed');
  }

  private wake(): void {
    const waiter = this.waiter;
    const ready = this.frames.shift();
    if (waiter === undefined || ready === undefined) {
      if (ready !== undefined) this.frames.unshift(ready);
      return;
    }
    this.waiter = undefined;
    waiter.resolve(ready);
  }

  private fail(err: Error): void {
    if (this.failure === undefined) this.failure = err;
    clearTimeout(this.timer);
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.reject(this.failure);
  }
}
