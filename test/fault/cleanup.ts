// Undo steps that always run: at teardown, at process exit, and on SIGINT/SIGTERM (then the process exits).

type Step = () => void;

const steps = new Map<number, Step>();
let nextId = 0;
let installed = false;

export interface Cleanup {
  /** Runs the step now (once) and unregisters it. */
  run(): void;
  /** Unregisters the step without running it. */
  cancel(): void;
}

/** Registers a synchronous undo step. */
export function onCleanup(step: Step): Cleanup {
  install();
  const id = nextId++;
  steps.set(id, step);
  return {
    run: () => {
      if (steps.delete(id)) safely(step);
    },
    cancel: () => {
      steps.delete(id);
    },
  };
}

/** Runs every registered step, newest first. */
export function runCleanups(): void {
  const pending = [...steps.entries()].reverse();
  steps.clear();
  for (const [, step] of pending) safely(step);
}

function safely(step: Step): void {
  try {
    step();
  } catch (error) {
    process.stderr.write(`fault cleanup step failed: ${(error as Error).message}\n`);
  }
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on('exit', runCleanups);
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    const handler = (): void => {
      runCleanups();
      process.off(signal, handler);
      // Leave the exit to another handler (e.g. the test runner's) if there is one.
      if (process.listenerCount(signal) === 0) process.exit(code);
    };
    process.on(signal, handler);
  }
}
