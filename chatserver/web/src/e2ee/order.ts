// Handshake and application messages of a conversation are processed strictly in the
// server's seq order: a commit changes the keys every later message needs. What arrives
// early (after a gap) waits; what was already processed is dropped.

export interface Item {
  seq: number;
  epoch: number;
  kind: 'commit' | 'message';
}

export type Decision<T extends Item> =
  | { action: 'process'; item: T }
  | { action: 'drop'; item: T; why: 'processed' | 'old-commit' }
  | { action: 'wait' };

/** Adds an item in seq order; one already queued (same seq) is not added twice. */
export function enqueue<T extends Item>(q: readonly T[], item: T): T[] {
  if (q.some((x) => x.seq === item.seq)) return q as T[];
  const out = [...q, item];
  out.sort((a, b) => a.seq - b.seq);
  return out;
}

/**
 * What to do with the head of the queue, given the group's epoch and the seq processed
 * last. A commit is processed at its epoch only; one for a later epoch waits (a commit
 * before it is missing), one for an earlier epoch is dropped (it lost the race, or is
 * already in). A message for a later epoch waits for the commit; one for the current or
 * an earlier epoch is tried (older epochs' keys may be retained).
 * `nextSeq`: the seq that must come next when known (no gap allowed), else 0.
 */
export function decide<T extends Item>(q: readonly T[], epoch: number, processedSeq: number): Decision<T> {
  const head = q[0];
  if (!head) return { action: 'wait' };
  if (head.seq <= processedSeq) return { action: 'drop', item: head, why: 'processed' };
  if (head.kind === 'commit') {
    if (head.epoch === epoch) return { action: 'process', item: head };
    if (head.epoch < epoch) return { action: 'drop', item: head, why: 'old-commit' };
    return { action: 'wait' };
  }
  if (head.epoch > epoch) return { action: 'wait' };
  return { action: 'process', item: head };
}

/** Jittered delay before a device commits a reconciliation, so they rarely collide. */
export function commitJitter(random: () => number, baseMs = 300, spreadMs = 1500): number {
  return Math.round(baseMs + random() * spreadMs);
}
