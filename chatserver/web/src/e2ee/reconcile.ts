// Reconciliation: an encrypted conversation's MLS group must hold exactly the live
// devices of the conversation's members on the server. Any device that sees a
// difference commits the fix (adds and removes), and the server's stale-epoch check
// makes sure only one such commit per epoch wins.

import { parseIdentity } from './payload';

export interface Leaf {
  index: number;
  identity: string;
}

export interface Device {
  userId: string;
  deviceId: string;
}

export interface Diff {
  /** Devices to add: members' live devices that hold no leaf. */
  add: Device[];
  /** Leaves to remove: devices gone, users no longer members, identities that are not ours. */
  remove: Leaf[];
  /** Users who hold leaves but are no longer members (the server already dropped them). */
  goneUsers: string[];
}

/**
 * What to commit. `myLeaf` is never removed (MLS forbids a commit removing its own
 * committer; another device removes it). `known`: users whose device list is known; a
 * member whose list could not be read is left alone rather than emptied.
 */
export function diffMembers(leaves: readonly Leaf[], members: readonly string[], devices: readonly Device[], myLeaf: number, known: ReadonlySet<string>): Diff {
  const memberSet = new Set(members);
  const want = new Map<string, Device>();
  for (const d of devices) if (memberSet.has(d.userId)) want.set(`${d.userId}:${d.deviceId}`, d);
  const have = new Set<string>();
  const remove: Leaf[] = [];
  const gone = new Set<string>();
  for (const l of leaves) {
    const id = parseIdentity(l.identity);
    if (have.has(l.identity) && l.index !== myLeaf) {
      remove.push(l); // a second leaf for the same device: a stale one
      continue;
    }
    have.add(l.identity);
    if (l.index === myLeaf) continue;
    if (!id) {
      remove.push(l);
      continue;
    }
    if (!memberSet.has(id.userId)) {
      remove.push(l);
      gone.add(id.userId);
      continue;
    }
    if (known.has(id.userId) && !want.has(l.identity)) remove.push(l);
  }
  const add = [...want.entries()].filter(([k]) => !have.has(k)).map(([, d]) => d);
  add.sort((a, b) => (a.userId + a.deviceId < b.userId + b.deviceId ? -1 : 1));
  remove.sort((a, b) => a.index - b.index);
  return { add, remove, goneUsers: [...gone].sort() };
}

export function emptyDiff(d: Diff): boolean {
  return d.add.length === 0 && d.remove.length === 0;
}
