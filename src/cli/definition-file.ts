// The realm definition as a reviewable YAML file: written by `definition export`, read back with every error at its line, and the diff `definition apply` shows.

import { isMap, isScalar, LineCounter, type Node, parseDocument, stringify } from 'yaml';
import type { DefinitionDoc, Level, RealmSettings, UserRecord } from '../../storage/access.js';
import { LEVELS } from '../../storage/access.js';
import { checked, checkRealm, checkSettings, checkUser } from '../../storage/commands.js';
import { UsageError } from './common.js';

/** What a definition file holds: the definition, and the version it was exported at (if it says). */
export interface DefinitionFile {
  readonly definition: DefinitionDoc;
  readonly version: number | undefined;
}

/** The YAML text of `definition` at `version`, with a header saying what it is and how to apply it. */
export function definitionYaml(definition: DefinitionDoc, version: number, source: string): string {
  const header = [
    `# Conclave realm definition, version ${version}, from ${source}.`,
    '# Edit it and apply it with: conclave definition apply FILE (shows the changes, then applies them',
    '# at once, refused if the definition changed since this version). Tokens are not part of it.',
  ].join('\n');
  const users = Object.fromEntries(
    Object.entries(definition.users).map(([name, user]) => [
      name,
      {
        ...(user.clusterAdmin ? { clusterAdmin: true } : {}),
        ...(Object.keys(user.grants).length === 0 ? {} : { grants: user.grants }),
      },
    ]),
  );
  const body = stringify({ version, auth: definition.auth, realms: definition.realms, users }, { indent: 2 });
  return `${header}\n${body}`;
}

/**
 * Reads a definition file. Every problem is a UsageError naming the file and the line: YAML
 * syntax, an unknown field, a bad name, a bad level or setting.
 */
export function parseDefinitionFile(text: string, file: string, valueMaxBytes: number): DefinitionFile {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: true, uniqueKeys: true });
  const at = (node: Node | null | undefined, message: string): UsageError => {
    const offset = node?.range?.[0];
    const where = offset === undefined ? '' : `:${lines.linePos(offset).line}`;
    return new UsageError(`${file}${where}: ${message}`);
  };
  const first = doc.errors[0];
  if (first !== undefined) {
    const line = first.linePos?.[0]?.line;
    throw new UsageError(
      `${file}${line === undefined ? '' : `:${line}`}: not YAML: ${first.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')}`,
    );
  }
  const root = doc.contents;
  if (!isMap(root)) throw at(root, 'the definition must be a mapping with realms, users and auth');
  let version: number | undefined;
  let auth = false;
  const realms: Record<string, RealmSettings> = {};
  const users: Record<string, UserRecord> = {};
  for (const pair of root.items) {
    const key = pair.key as Node;
    const name = isScalar(key) ? String(key.value) : '';
    const value = pair.value as Node | null;
    const plain = value === null ? null : value.toJSON();
    switch (name) {
      case 'version':
        if (!Number.isSafeInteger(plain) || (plain as number) < 0)
          throw at(value, 'version must be a non-negative integer');
        version = plain as number;
        break;
      case 'auth':
        if (typeof plain !== 'boolean') throw at(value, 'auth must be true or false');
        auth = plain;
        break;
      case 'realms':
        if (value === null) break;
        if (!isMap(value)) throw at(value, 'realms must be a mapping of realm names to their settings');
        for (const item of value.items) {
          const realmNode = item.key as Node;
          const realm = String((realmNode as { value?: unknown }).value);
          const check = checked(() => checkRealm(realm));
          if (!check.ok) throw at(realmNode, check.error.message);
          const settingsNode = item.value as Node | null;
          const raw = settingsNode === null ? {} : settingsNode.toJSON();
          const settings = checked(() => checkSettings(raw ?? {}, `realm ${realm}`, { valueMaxBytes }));
          if (!settings.ok) throw at(settingsNode ?? realmNode, settings.error.message);
          realms[realm] = settings.value;
        }
        break;
      case 'users':
        if (value === null) break;
        if (!isMap(value)) throw at(value, 'users must be a mapping of user names to their roles');
        for (const item of value.items) {
          const userNode = item.key as Node;
          const user = String((userNode as { value?: unknown }).value);
          const check = checked(() => checkUser(user));
          if (!check.ok) throw at(userNode, check.error.message);
          users[user] = parseUser(item.value as Node | null, userNode, user, at);
        }
        break;
      default:
        throw at(
          key,
          `unknown field ${JSON.stringify(name)}: a definition has version, auth, realms and users`,
        );
    }
  }
  for (const [user, record] of Object.entries(users)) {
    for (const realm of Object.keys(record.grants)) {
      if (realms[realm] === undefined) {
        throw at(
          findGrant(root, user, realm),
          `user ${user} has a grant on ${realm}, which is not among the realms`,
        );
      }
    }
  }
  return { definition: { auth, realms, users }, version };
}

function parseUser(
  node: Node | null,
  keyNode: Node,
  user: string,
  at: (node: Node | null | undefined, message: string) => UsageError,
): UserRecord {
  if (node === null) return { clusterAdmin: false, grants: {} };
  if (!isMap(node)) throw at(node, `user ${user} must be a mapping (clusterAdmin, grants)`);
  let clusterAdmin = false;
  const grants: Record<string, Level> = {};
  for (const item of node.items) {
    const fieldNode = item.key as Node;
    const field = String((fieldNode as { value?: unknown }).value);
    const valueNode = item.value as Node | null;
    if (field === 'clusterAdmin') {
      const value = valueNode?.toJSON();
      if (typeof value !== 'boolean')
        throw at(valueNode ?? fieldNode, `user ${user}: clusterAdmin must be true or false`);
      clusterAdmin = value;
    } else if (field === 'grants') {
      if (valueNode === null) continue;
      if (!isMap(valueNode))
        throw at(valueNode, `user ${user}: grants must map realm names to read, write or admin`);
      for (const grant of valueNode.items) {
        const realmNode = grant.key as Node;
        const realm = String((realmNode as { value?: unknown }).value);
        const check = checked(() => checkRealm(realm));
        if (!check.ok) throw at(realmNode, check.error.message);
        const level = (grant.value as Node | null)?.toJSON();
        if (!(LEVELS as readonly unknown[]).includes(level)) {
          throw at(
            (grant.value as Node | null) ?? realmNode,
            `user ${user}: the grant on ${realm} must be one of ${LEVELS.join(', ')}`,
          );
        }
        grants[realm] = level as Level;
      }
    } else {
      throw at(
        fieldNode ?? keyNode,
        `user ${user}: unknown field ${JSON.stringify(field)} (clusterAdmin, grants)`,
      );
    }
  }
  return { clusterAdmin, grants };
}

function findGrant(root: Node, user: string, realm: string): Node | null {
  const users = isMap(root) ? root.get('users', true) : undefined;
  const record = isMap(users) ? users.get(user, true) : undefined;
  const grants = isMap(record) ? record.get('grants', true) : undefined;
  if (!isMap(grants)) return null;
  for (const item of grants.items) {
    if (String((item.key as { value?: unknown }).value) === realm) return item.key as Node;
  }
  return null;
}

/**
 * The changes from `current` to `target`, one line each, `+` added, `-` removed, `~` changed,
 * in a stable order. Empty: they are the same.
 */
export function definitionDiff(current: DefinitionDoc, target: DefinitionDoc): string[] {
  const lines: string[] = [];
  if (current.auth !== target.auth) lines.push(`~ auth: ${onOff(current.auth)} -> ${onOff(target.auth)}`);
  const settingsText = (settings: RealmSettings): string =>
    settings.maxValueBytes === undefined ? 'the node limit' : `maxValueBytes ${settings.maxValueBytes}`;
  for (const realm of union(current.realms, target.realms)) {
    const before = current.realms[realm];
    const after = target.realms[realm];
    if (before === undefined)
      lines.push(`+ realm ${realm}${after!.maxValueBytes === undefined ? '' : ` (${settingsText(after!)})`}`);
    else if (after === undefined) lines.push(`- realm ${realm} (it must hold no documents)`);
    else if (before.maxValueBytes !== after.maxValueBytes) {
      lines.push(`~ realm ${realm}: ${settingsText(before)} -> ${settingsText(after)}`);
    }
  }
  for (const user of union(current.users, target.users)) {
    const before = current.users[user];
    const after = target.users[user];
    if (before === undefined) {
      const grants = Object.entries(after!.grants).map(([realm, level]) => `${realm} ${level}`);
      const parts = [...(after!.clusterAdmin ? ['cluster-admin'] : []), ...grants];
      lines.push(`+ user ${user}${parts.length === 0 ? '' : ` (${parts.join(', ')})`}`);
    } else if (after === undefined) {
      lines.push(`- user ${user} (and every token of it)`);
    } else {
      if (before.clusterAdmin !== after.clusterAdmin) {
        lines.push(
          `~ user ${user}: cluster-admin ${onOff(before.clusterAdmin)} -> ${onOff(after.clusterAdmin)}`,
        );
      }
      for (const realm of union(before.grants, after.grants)) {
        const was = before.grants[realm];
        const now = after.grants[realm];
        if (was !== now) lines.push(`~ user ${user}: ${realm} ${was ?? 'none'} -> ${now ?? 'none'}`);
      }
    }
  }
  return lines;
}

function onOff(value: boolean): string {
  return value ? 'on' : 'off';
}

function union(a: object, b: object): string[] {
  return [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
}
