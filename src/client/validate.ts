// Checks of call arguments, so that a bad argument fails at once with INVALID_ARGUMENT naming it.

import { invalidArgument } from './errors.js';

export function checkName(value: unknown, name: string): string {
  if (typeof value !== 'string' || value === '') throw invalidArgument(`${name} must be a non-empty string`);
  return value;
}

export function checkString(value: unknown, name: string): string {
  if (typeof value !== 'string') throw invalidArgument(`${name} must be a string`);
  return value;
}

export function checkCount(value: unknown, name: string, min: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw invalidArgument(`${name} must be an integer >= ${min}, not ${String(value)}`);
  }
  return value;
}

export function checkConsistency(value: unknown): 'linearizable' | 'stale' {
  if (value !== 'linearizable' && value !== 'stale') {
    throw invalidArgument(`consistency must be 'linearizable' or 'stale', not ${String(value)}`);
  }
  return value;
}

export function checkArray(value: unknown, name: string): readonly unknown[] {
  if (!Array.isArray(value)) throw invalidArgument(`${name} must be an array`);
  return value;
}

export function checkDefined(value: unknown, name: string): void {
  if (value === undefined) throw invalidArgument(`${name} must be a JSON value, not undefined`);
}

/** `options` as an object (an absent one is empty). */
export function checkOptions<T extends object>(options: T | undefined, name: string): Partial<T> {
  if (options === undefined) return {};
  if (typeof options !== 'object' || options === null) throw invalidArgument(`${name} must be an object`);
  return options;
}
