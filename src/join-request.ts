// A node started with --join and --role asks the cluster to add it in that role, and to promote it once caught up if it asked to vote.

import type { Logger } from '../net/index.js';
import type { LearnerRole, MemberRole } from '../storage/index.js';
import type { JoinAnswer, JoinRequest } from './peer-protocol.js';

/** Refusals that pass with time: one membership change at a time, a new leader, a learner still behind. */
const WAIT_REASONS: ReadonlySet<string> = new Set([
  'MEMBERSHIP_CHANGE_PENDING',
  'NO_COMMITTED_ENTRY_IN_TERM',
  'LEARNER_NOT_CAUGHT_UP',
]);

export interface JoinRequesterInit {
  readonly name: string;
  readonly role: MemberRole;
  /** Where members dial this node ('' for a satellite that dials them). */
  readonly address: string;
  readonly logger: Logger;
  /** This node's applied membership: voters, learners and the learners' roles. */
  readonly membership: () => {
    voters: readonly string[];
    learners: readonly string[];
    roles: Readonly<Record<string, LearnerRole>>;
  };
  /** Sends the request to a member (which takes it to the leader); throws its refusal. */
  readonly ask: (request: JoinRequest) => Promise<JoinAnswer>;
  /** Between attempts. */
  readonly intervalMs: number;
}

/** Where this node stands against the role it asked for. */
export type JoinProgress = 'outside' | 'learner' | 'done' | 'mismatch';

/**
 * Keeps asking, once per interval, until this node's own applied membership shows it in the
 * role it asked for (so an answer lost on the way costs one more round, never a wrong state).
 * Stops for good on a role it cannot get by asking (it is a member in another role: changing
 * a member's role is the operator's, with `members remove` and a new join). Logs each step.
 */
export class JoinRequester {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private running = false;
  private lastProblem = '';

  constructor(private readonly init: JoinRequesterInit) {}

  start(): void {
    this.init.logger.info('node.join_requested', { role: this.init.role, address: this.init.address });
    this.schedule(0);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Where this node stands now. */
  progress(): JoinProgress {
    const { name, role } = this.init;
    const { voters, learners, roles } = this.init.membership();
    if (voters.includes(name)) return role === 'voter' ? 'done' : 'mismatch';
    if (!learners.includes(name)) return 'outside';
    const current = roles[name] ?? 'learner';
    if (role === 'voter') return current === 'learner' ? 'learner' : 'mismatch';
    return current === role ? 'done' : 'mismatch';
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.attempt(), delayMs);
    this.timer.unref();
  }

  private async attempt(): Promise<void> {
    if (this.stopped || this.running) return;
    this.running = true;
    try {
      const progress = this.progress();
      if (progress === 'done') {
        this.init.logger.info('node.join_done', { role: this.init.role });
        this.stop();
        return;
      }
      if (progress === 'mismatch') {
        const { voters, roles } = this.init.membership();
        const current = voters.includes(this.init.name) ? 'voter' : (roles[this.init.name] ?? 'learner');
        this.init.logger.error('node.join_role_mismatch', {
          asked: this.init.role,
          current,
          hint: `this node is already a ${current}; to change its role, remove it (conclave members remove ${this.init.name}), wipe its data directory and start it again`,
        });
        this.stop();
        return;
      }
      try {
        const answer = await this.init.ask({
          type: 'join',
          role: this.init.role,
          address: this.init.address,
        });
        this.lastProblem = '';
        this.init.logger.info('node.join_answered', { role: this.init.role, done: answer.done });
      } catch (error) {
        const { code, reason, message } = error as { code?: string; reason?: string; message?: string };
        const problem = `${code ?? 'ERROR'}${reason ? `/${reason}` : ''}: ${message ?? String(error)}`;
        const waiting = reason !== undefined && WAIT_REASONS.has(reason);
        // Said once per distinct problem: a node left waiting for a long catch-up stays quiet.
        if (problem !== this.lastProblem) {
          if (waiting) this.init.logger.info('node.join_waiting', { role: this.init.role, problem });
          else this.init.logger.warn('node.join_refused', { role: this.init.role, problem });
        }
        this.lastProblem = problem;
      }
    } finally {
      this.running = false;
    }
    this.schedule(this.init.intervalMs);
  }
}
