// Membership change requests and their byte encoding inside a MembershipChange log entry.

import type { Membership, NodeId } from './types.js';

export enum MembershipChangeType {
  AddLearner = 1,
  PromoteLearner = 2,
  RemoveNode = 3,
}

/** One single-server change (dissertation §4.1). `context` is opaque (e.g. the node's address). */
export interface MembershipChange {
  readonly type: MembershipChangeType;
  readonly nodeId: NodeId;
  readonly context?: Uint8Array;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });
/** The longest node id (UTF-8 bytes) a membership change can carry. */
export const MAX_NODE_ID_BYTES = 1024;

/** Layout: [type: u8][id length: u16 big-endian][id: utf-8][context: rest]. */
export function encodeMembershipChange(change: MembershipChange): Uint8Array {
  const id = encoder.encode(change.nodeId);
  const context = change.context ?? new Uint8Array(0);
  const out = new Uint8Array(3 + id.length + context.length);
  out[0] = change.type;
  out[1] = id.length >>> 8;
  out[2] = id.length & 0xff;
  out.set(id, 3);
  out.set(context, 3 + id.length);
  return out;
}

/** Decodes an entry payload; returns undefined for bytes that are not a valid change. */
export function decodeMembershipChange(data: Uint8Array): MembershipChange | undefined {
  if (data.length < 3) return undefined;
  const type = data[0]!;
  if (type < MembershipChangeType.AddLearner || type > MembershipChangeType.RemoveNode) return undefined;
  const idLength = (data[1]! << 8) | data[2]!;
  if (idLength === 0 || idLength > MAX_NODE_ID_BYTES || 3 + idLength > data.length) return undefined;
  let nodeId: string;
  try {
    nodeId = decoder.decode(data.subarray(3, 3 + idLength));
  } catch {
    return undefined;
  }
  return { type, nodeId, context: data.slice(3 + idLength) };
}

/** Why `change` cannot apply to `membership`, or undefined when it can. */
export function membershipChangeProblem(
  membership: Membership,
  change: MembershipChange,
): string | undefined {
  if (typeof change.nodeId !== 'string' || change.nodeId.length === 0) return 'the node id is empty';
  if (encoder.encode(change.nodeId).length > MAX_NODE_ID_BYTES) {
    return `the node id is longer than ${MAX_NODE_ID_BYTES} bytes`;
  }
  const isVoter = membership.voters.includes(change.nodeId);
  const isLearner = membership.learners.includes(change.nodeId);
  switch (change.type) {
    case MembershipChangeType.AddLearner:
      return isVoter || isLearner ? `${change.nodeId} is already a member` : undefined;
    case MembershipChangeType.PromoteLearner:
      return isLearner ? undefined : `${change.nodeId} is not a learner`;
    case MembershipChangeType.RemoveNode:
      if (!isVoter && !isLearner) return `${change.nodeId} is not a member`;
      if (isVoter && membership.voters.length === 1) return `${change.nodeId} is the last voter`;
      return undefined;
    default:
      return `unknown change type ${String(change.type)}`;
  }
}

/** The membership after `change`; a change that does not apply leaves it as it was. */
export function applyMembershipChange(membership: Membership, change: MembershipChange): Membership {
  if (membershipChangeProblem(membership, change) !== undefined) return membership;
  const voters = membership.voters.filter((id) => id !== change.nodeId);
  const learners = membership.learners.filter((id) => id !== change.nodeId);
  if (change.type === MembershipChangeType.AddLearner) learners.push(change.nodeId);
  if (change.type === MembershipChangeType.PromoteLearner) voters.push(change.nodeId);
  return { voters: voters.sort(), learners: learners.sort() };
}
