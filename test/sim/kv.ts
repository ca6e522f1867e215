// The simulator's state machine: a tiny key-value store with put and compare-and-set, applied in log order.

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A client command. `op` ids let a client find its own entry's result among applied entries. */
export type KvCommand =
  | { readonly kind: 'put'; readonly op: number; readonly key: string; readonly value: string }
  | {
      readonly kind: 'cas';
      readonly op: number;
      readonly key: string;
      readonly expected: string | null;
      readonly value: string;
    };

/** What applying a command produced: put always succeeds; cas says whether it swapped. */
export type KvResult = { readonly kind: 'put' } | { readonly kind: 'cas'; readonly swapped: boolean };

export function encodeCommand(command: KvCommand): Uint8Array {
  return encoder.encode(JSON.stringify(command));
}

export function decodeCommand(data: Uint8Array): KvCommand {
  return JSON.parse(decoder.decode(data)) as KvCommand;
}

export class KvStateMachine {
  private readonly data = new Map<string, string>();

  get(key: string): string | null {
    return this.data.get(key) ?? null;
  }

  apply(command: KvCommand): KvResult {
    if (command.kind === 'put') {
      this.data.set(command.key, command.value);
      return { kind: 'put' };
    }
    const current = this.data.get(command.key) ?? null;
    if (current !== command.expected) return { kind: 'cas', swapped: false };
    this.data.set(command.key, command.value);
    return { kind: 'cas', swapped: true };
  }

  serialize(): Uint8Array {
    return encoder.encode(JSON.stringify([...this.data.entries()].sort()));
  }

  static deserialize(data: Uint8Array): KvStateMachine {
    const machine = new KvStateMachine();
    if (data.length === 0) return machine;
    for (const [key, value] of JSON.parse(decoder.decode(data)) as [string, string][])
      machine.data.set(key, value);
    return machine;
  }
}
