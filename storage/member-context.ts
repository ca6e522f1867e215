// Member roles and what an add-learner entry carries about the node: its mesh address and its role.

/*
 * Raft knows voters and learners. A learner is added for one of these reasons, its role:
 *   learner    on its way to becoming a voter (`members add` promotes it once caught up), or a
 *              plain replica
 *   spare      kept caught up to replace a voter that died
 *   satellite  serves distant clients; dials the cluster itself and is never dialed
 *   dr         a disaster-recovery replica: serves no client until promoted into a new cluster
 * The role travels in the add-learner entry's context, so every member applies the same roles
 * in log order. Contexts written before roles existed are a bare UTF-8 multiaddr: role learner.
 */

/** Every role a member can have. `voter` is raft's; the others are all raft learners. */
export const MEMBER_ROLES = ['voter', 'learner', 'spare', 'satellite', 'dr'] as const;
export type MemberRole = (typeof MEMBER_ROLES)[number];
/** The roles of a raft learner. */
export const LEARNER_ROLES = ['learner', 'spare', 'satellite', 'dr'] as const;
export type LearnerRole = (typeof LEARNER_ROLES)[number];

export function isLearnerRole(value: unknown): value is LearnerRole {
  return typeof value === 'string' && (LEARNER_ROLES as readonly string[]).includes(value);
}

/** What an add-learner entry says of the node. `address` is '' when nobody should dial it. */
export interface MemberContext {
  readonly address: string;
  readonly role: LearnerRole;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * The context bytes for an add-learner entry. A plain learner with an address is written as the
 * bare address, as before roles existed, so that an older member reading the entry keeps its
 * address book right; any other role is a JSON object.
 */
export function encodeMemberContext(context: MemberContext): Uint8Array {
  if (context.role === 'learner' && context.address !== '') return encoder.encode(context.address);
  return encoder.encode(JSON.stringify({ address: context.address, role: context.role }));
}

/**
 * Reads a context back. Never throws: the entry is already committed, so whatever it holds must
 * apply the same everywhere. Bytes that are neither form read as a bare address; a JSON object
 * with an unknown role (a newer version's) reads as role learner.
 */
export function decodeMemberContext(bytes: Uint8Array | undefined): MemberContext {
  const text = bytes === undefined ? '' : decoder.decode(bytes);
  if (!text.startsWith('{')) return { address: text, role: 'learner' };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { address: '', role: 'learner' };
  }
  if (typeof parsed !== 'object' || parsed === null) return { address: '', role: 'learner' };
  const { address, role } = parsed as { address?: unknown; role?: unknown };
  return {
    address: typeof address === 'string' ? address : '',
    role: isLearnerRole(role) ? role : 'learner',
  };
}

/**
 * The context of a promotion that replaces a dead voter (raft/spare-policy.ts): the voter it
 * replaces, whose removal follows. A promotion without one is an operator's.
 */
export function encodePromotionContext(replaces: string): Uint8Array {
  return encoder.encode(JSON.stringify({ replaces }));
}

/** The voter a promotion replaces, or undefined (an operator's promotion, or bytes of another kind). Never throws. */
export function decodePromotionContext(bytes: Uint8Array | undefined): string | undefined {
  if (bytes === undefined || bytes.length === 0 || bytes[0] !== 0x7b) return undefined;
  try {
    const parsed = JSON.parse(decoder.decode(bytes)) as { replaces?: unknown } | null;
    return typeof parsed?.replaces === 'string' && parsed.replaces !== '' ? parsed.replaces : undefined;
  } catch {
    return undefined;
  }
}
