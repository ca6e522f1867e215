// Parsers for the reference history formats in test/testdata/linearizability (Jepsen etcd logs, EDN kv logs).

import {
  HistoryRecorder,
  type KvInput,
  type KvOutput,
  type Operation,
  type RegisterInput,
  type RegisterOutput,
} from './linearizability.js';

const JEPSEN_PREFIX = /^INFO\s+jepsen\.util\s+-\s+\d+\s/;
const JEPSEN_LINE =
  /^INFO\s+jepsen\.util\s+-\s+(\d+)\s+:(invoke|ok|fail|info)\s+:(read|write|cas)\s+(.*?)\s*$/;
const CAS_VALUE = /^\[\s*(-?\d+)\s+(-?\d+)\s*\]$/;
const INT_VALUE = /^-?\d+$/;

function parseInt10(s: string, where: string): number {
  if (!INT_VALUE.test(s)) throw new Error(`${where}: expected an integer, got ${JSON.stringify(s)}`);
  return Number.parseInt(s, 10);
}

/**
 * Parses a Jepsen etcd register log (`INFO  jepsen.util - P  :TYPE  :F  VALUE` lines) into
 * operations for `registerModel`, timestamped in line order.
 *
 * - `:ok :read V` → read returned V (`nil` → null); `:ok :write` → true; `:ok :cas` → true.
 * - `:fail :cas [a b]` → the cas did not swap (output false).
 * - `:fail … :timed-out` and `:info …` → unknown outcome: the operation may take effect at any
 *   point after its invocation, or never.
 * - Any other `:fail` → the operation had no effect and is dropped.
 * - Invocations never completed → unknown outcome.
 *
 * Lines that are not `jepsen.util` process lines are ignored; a malformed process line throws.
 */
export function parseJepsenEtcdLog(text: string): Operation<RegisterInput, RegisterOutput>[] {
  const rec = new HistoryRecorder<RegisterInput, RegisterOutput>();
  const open = new Map<number, { id: number; f: string; value: string }>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trimEnd();
    if (!JEPSEN_PREFIX.test(line)) continue;
    const where = `line ${i + 1}`;
    const m = JEPSEN_LINE.exec(line);
    if (!m) throw new Error(`${where}: unrecognised Jepsen line: ${line}`);
    const proc = Number(m[1]);
    const type = m[2]!;
    const f = m[3]!;
    const value = m[4]!;
    if (type === 'invoke') {
      if (open.has(proc)) throw new Error(`${where}: process ${proc} invoked while an operation is open`);
      let input: RegisterInput;
      if (f === 'read') {
        if (value !== 'nil') throw new Error(`${where}: read invoked with a value`);
        input = { op: 'read' };
      } else if (f === 'write') {
        input = { op: 'write', value: parseInt10(value, where) };
      } else {
        const cas = CAS_VALUE.exec(value);
        if (!cas) throw new Error(`${where}: malformed cas value ${value}`);
        input = { op: 'cas', from: Number(cas[1]), to: Number(cas[2]) };
      }
      open.set(proc, { id: rec.invoke(proc, input), f, value });
      continue;
    }
    const inv = open.get(proc);
    if (!inv) throw new Error(`${where}: process ${proc} completed without an open invocation`);
    if (inv.f !== f) throw new Error(`${where}: completion :${f} does not match invocation :${inv.f}`);
    open.delete(proc);
    if (type === 'info' || value === ':timed-out') {
      rec.completeUnknown(inv.id);
    } else if (type === 'ok') {
      if (f === 'read') {
        rec.complete(inv.id, value === 'nil' ? null : parseInt10(value, where));
      } else {
        if (value !== inv.value)
          throw new Error(`${where}: completion value ${value} differs from invocation`);
        rec.complete(inv.id, true);
      }
    } else if (f === 'cas') {
      if (value !== inv.value) throw new Error(`${where}: completion value ${value} differs from invocation`);
      rec.complete(inv.id, false);
    } else {
      rec.discard(inv.id);
    }
  }
  return rec.operations();
}

const EDN_STRING = String.raw`"(?:[^"\\]|\\.)*"`;
const KV_LINE = new RegExp(
  String.raw`^\{:process (\d+), :type :(invoke|ok|fail|info), :f :(get|put|append), :key (${EDN_STRING}), :value (nil|${EDN_STRING})\}$`,
);

/** Decodes an EDN string literal (its escapes are a subset of JSON's for the data we read). */
function ednString(literal: string, where: string): string {
  try {
    return JSON.parse(literal) as string;
  } catch {
    throw new Error(`${where}: unsupported string literal ${literal}`);
  }
}

/**
 * Parses an EDN kv log (`{:process P, :type :invoke|:ok, :f :get|:put|:append, :key "K",
 * :value V}` per line) into operations for a KV model, timestamped in line order.
 * `:ok :get` outputs the returned value (`nil` → null); `:ok :put`/`:append` output true; `:fail`
 * drops the operation; `:info` and invocations never completed have an unknown outcome. Blank lines
 * are skipped; any other line throws.
 */
export function parseKvEdn(text: string): Operation<KvInput, KvOutput>[] {
  const rec = new HistoryRecorder<KvInput, KvOutput>();
  const open = new Map<number, { id: number; f: string; key: string }>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    const where = `line ${i + 1}`;
    const m = KV_LINE.exec(line);
    if (!m) throw new Error(`${where}: unrecognised kv line: ${line}`);
    const proc = Number(m[1]);
    const type = m[2]!;
    const f = m[3]!;
    const key = ednString(m[4]!, where);
    const value = m[5] === 'nil' ? null : ednString(m[5]!, where);
    if (type === 'invoke') {
      if (open.has(proc)) throw new Error(`${where}: process ${proc} invoked while an operation is open`);
      let input: KvInput;
      if (f === 'get') {
        input = { op: 'get', key };
      } else if (value === null) {
        throw new Error(`${where}: :${f} invoked without a value`);
      } else {
        input = f === 'put' ? { op: 'put', key, value } : { op: 'append', key, value };
      }
      open.set(proc, { id: rec.invoke(proc, input), f, key });
      continue;
    }
    const inv = open.get(proc);
    if (!inv) throw new Error(`${where}: process ${proc} completed without an open invocation`);
    if (inv.f !== f || inv.key !== key) throw new Error(`${where}: completion does not match its invocation`);
    open.delete(proc);
    if (type === 'ok') rec.complete(inv.id, f === 'get' ? value : true);
    else if (type === 'info') rec.completeUnknown(inv.id);
    else rec.discard(inv.id);
  }
  return rec.operations();
}
