// The lifecycle every part of a node follows: started in order, stopped in reverse.

/** A part of a node with a lifecycle (a raft group, the mesh, the client edge, …). */
export interface Service {
  /** Named in logs and errors. */
  readonly name: string;
  /** Resolves once the part runs; rejects if it cannot start (then it holds nothing). */
  start(): Promise<void>;
  /** Resolves once the part holds nothing more; safe to call twice, and after a failed start. */
  stop(): Promise<void>;
}

/**
 * Services started in the order given and stopped in reverse. If one fails to start, those
 * already started are stopped (in reverse) and the start rejects with the first error.
 * stop() stops every started service even if some fail, then rejects with the first failure.
 */
export class ServiceStack {
  private readonly started: Service[] = [];

  constructor(
    private readonly services: readonly Service[],
    private readonly onStopFailed: (service: Service, error: unknown) => void = () => undefined,
  ) {}

  async start(): Promise<void> {
    for (const service of this.services) {
      try {
        await service.start();
        this.started.push(service);
      } catch (error) {
        await this.stop().catch(() => undefined);
        throw error;
      }
    }
  }

  async stop(): Promise<void> {
    let first: unknown;
    let failed = false;
    while (this.started.length > 0) {
      const service = this.started.pop()!;
      try {
        await service.stop();
      } catch (error) {
        this.onStopFailed(service, error);
        if (!failed) first = error;
        failed = true;
      }
    }
    if (failed) throw first;
  }
}
