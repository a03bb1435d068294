import { urlAt } from './markdown';
import type { Attachment, ChangeEvent, Message, Reaction, ReplyRef } from './types';

/** A message of mine that the server has not confirmed yet. */
export interface Pending {
  clientId: string;
  conversationId: string;
  body: string;
  createdAt: string;
  status: 'pending' | 'failed';
  error?: string;
  /** The message it answers (sent as `replyTo`, shown as a quote). */
  replyTo?: ReplyRef;
  /**
   * Uploaded files it carries (sent as their ids): uploaded before the message was
   * written, so a resend (a retry, a reconnect, a reload) carries the same ids.
   */
  attachments?: Attachment[];
}

/** A change of a conversation's disappearing-messages setting, shown where it happened. */
export interface SettingNotice {
  seq: number;
  expireAfter: number;
  changedBy: string;
  changedAt: string;
}

/** What the client holds of one conversation's messages. */
export interface Thread {
  /** Confirmed messages, ascending by seq, unique by id. */
  messages: Message[];
  /** My unconfirmed messages, in the order written. */
  pending: Pending[];
  /** Older messages exist on the server (history loaded as you scroll up). */
  hasMore: boolean;
  /** The newest page was fetched from the server. */
  loaded: boolean;
  /** Setting changes seen (live or in a sync), by seq. */
  notices?: SettingNotice[];
}

export const emptyThread = (): Thread => ({ messages: [], pending: [], hasMore: false, loaded: false });

/** The first 100 characters of a text (a reply's quote of it, as the server makes it). */
export function excerpt(text: string): string {
  const chars = [...text];
  return chars.length > 100 ? chars.slice(0, 100).join('') : text;
}

function mapMessages(t: Thread, f: (m: Message) => Message): Thread {
  let changed = false;
  const messages = t.messages.map((m) => {
    const n = f(m);
    if (n !== m) changed = true;
    return n;
  });
  return changed ? { ...t, messages } : t;
}

/** Reaction counts from a `reaction` frame; `me` follows the frame when it is mine, else stays. */
export function reactionsAfter(prev: readonly Reaction[] | undefined, ev: Extract<ChangeEvent, { type: 'reaction' }>, myId: string | null): Reaction[] {
  const mine = new Map((prev ?? []).map((r) => [r.emoji, r.me]));
  return ev.counts
    .filter((c) => c.count > 0)
    .map((c) => ({ emoji: c.emoji, count: c.count, me: ev.userId === myId && c.emoji === ev.emoji ? ev.added : (mine.get(c.emoji) ?? false) }));
}

/**
 * Applies a change event to the messages held (docs/api.md "Message lifecycle"): an edit
 * sets the text, a deletion makes a tombstone, a reaction sets the counts, a setting change
 * is noted. Idempotent, so one repeated by a sync is harmless; events about messages not
 * held change nothing (those come in their current state when loaded).
 */
export function applyEvent(t: Thread, ev: ChangeEvent, myId: string | null): Thread {
  switch (ev.type) {
    case 'message_edited': {
      const q = excerpt(ev.body);
      return mapMessages(t, (m) => {
        if (m.id === ev.messageId) return m.deleted || (m.body === ev.body && m.editedAt === ev.editedAt) ? m : { ...m, body: ev.body, editedAt: ev.editedAt };
        if (m.replyTo?.id === ev.messageId && !m.replyTo.deleted && m.replyTo.excerpt !== q) return { ...m, replyTo: { ...m.replyTo, excerpt: q } };
        return m;
      });
    }
    case 'message_deleted':
      return mapMessages(t, (m) => {
        if (m.id === ev.messageId) {
          if (m.deleted) return m;
          const { editedAt: _e, replyTo: _r, reactions: _x, attachments: _a, ...rest } = m;
          return { ...rest, body: '', deleted: { ...(ev.deletedBy ? { by: ev.deletedBy } : {}), at: ev.deletedAt, reason: ev.reason } };
        }
        if (m.replyTo?.id === ev.messageId && !m.replyTo.deleted) return { ...m, replyTo: { ...m.replyTo, excerpt: '', deleted: true } };
        return m;
      });
    case 'reaction':
      return mapMessages(t, (m) => (m.id === ev.messageId && !m.deleted ? { ...m, reactions: reactionsAfter(m.reactions, ev, myId) } : m));
    case 'conversation_settings': {
      const notices = t.notices ?? [];
      if (notices.some((n) => n.seq === ev.seq)) return t;
      const n: SettingNotice = { seq: ev.seq, expireAfter: ev.expireAfter, changedBy: ev.changedBy, changedAt: ev.changedAt };
      return { ...t, notices: [...notices, n].sort((a, b) => a.seq - b.seq) };
    }
  }
}

/** Puts the current state of a message (an answer to an edit, delete or reaction) in place of the one held. */
export function replaceMessage(t: Thread, msg: Message): Thread {
  return mapMessages(t, (m) => (m.id === msg.id ? msg : m));
}

/**
 * Moves a cursor over the seqs seen above it (messages and change events alike): it moves
 * only through consecutive seqs, so a gap stops it. Consumed seqs leave `seen`.
 */
export function advanceOver(cursor: number, seen: Set<number>): number {
  let c = cursor;
  while (seen.has(c + 1)) {
    c++;
    seen.delete(c);
  }
  for (const s of seen) if (s <= c) seen.delete(s);
  return c;
}

/** Merges messages: de-duplicated by id (and seq), ascending by seq. Returns `a` when nothing changed. */
export function mergeMessages(a: readonly Message[], b: readonly Message[]): Message[] {
  if (b.length === 0) return a as Message[];
  // The common cases without sets or sorting, so a long history costs nothing per message
  // received: newer ones after all held (live, acks) and an older page before them.
  if (ascending(b)) {
    if (a.length === 0) return b.slice();
    if (b[0].seq > a[a.length - 1].seq) return a.concat(b);
    if (b[b.length - 1].seq < a[0].seq) return b.concat(a);
  }
  const ids = new Set(a.map((m) => m.id));
  const seqs = new Set(a.map((m) => m.seq));
  const added: Message[] = [];
  for (const m of b) {
    if (ids.has(m.id) || seqs.has(m.seq)) continue;
    ids.add(m.id);
    seqs.add(m.seq);
    added.push(m);
  }
  if (added.length === 0) return a as Message[];
  const out = a.concat(added);
  out.sort((x, y) => x.seq - y.seq);
  return out;
}

/** Strictly ascending by seq (so also unique). */
function ascending(ms: readonly Message[]): boolean {
  for (let i = 1; i < ms.length; i++) if (ms[i].seq <= ms[i - 1].seq) return false;
  return true;
}

/** Index of the first message with seq >= `seq` (messages ascending by seq). */
export function indexFromSeq(messages: readonly Message[], seq: number): number {
  let lo = 0;
  let hi = messages.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (messages[mid].seq < seq) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * The part of a long history the view renders: messages from seq `from` to seq `to`
 * (Infinity: the newest, following new ones), as [start, end) indices. Only this part is
 * in the DOM; scrolling moves it. At most `max` messages: when following the newest, the
 * oldest of the part are left out.
 */
export function windowRange(messages: readonly Message[], from: number, to: number, max: number): { start: number; end: number } {
  const end = to === Infinity ? messages.length : indexFromSeq(messages, to + 1);
  let start = Math.min(indexFromSeq(messages, from), end);
  if (to === Infinity && end - start > max) start = end - max;
  return { start, end };
}

/**
 * Advances a conversation cursor (the highest seq up to which nothing is missing)
 * over the messages held: it moves only through consecutive seqs, so a gap stops it
 * and the next sync asks for what is missing.
 */
export function advanceCursor(cursor: number, messages: readonly Message[]): number {
  let c = cursor;
  for (const m of messages) {
    if (m.seq <= c) continue;
    if (m.seq === c + 1) c = m.seq;
    else break;
  }
  return c;
}

export function addPending(t: Thread, p: Omit<Pending, 'status'>): Thread {
  return { ...t, pending: [...t.pending, { ...p, status: 'pending' }] };
}

/** A stored message arrived (ack, live, sync or history). If it is one of my pending ones, it is confirmed. */
export function receive(t: Thread, msgs: readonly Message[], myId: string | null): Thread {
  const mine = new Set(msgs.filter((m) => m.senderId === myId).map((m) => m.clientId));
  const pending = mine.size ? t.pending.filter((p) => !mine.has(p.clientId)) : t.pending;
  const messages = mergeMessages(t.messages, msgs);
  if (messages === t.messages && pending.length === t.pending.length) return t;
  return { ...t, messages, pending };
}

export function failPending(t: Thread, clientId: string, error: string): Thread {
  let changed = false;
  const pending = t.pending.map((p) => {
    if (p.clientId !== clientId || p.status === 'failed') return p;
    changed = true;
    return { ...p, status: 'failed' as const, error };
  });
  return changed ? { ...t, pending } : t;
}

export function retryPending(t: Thread, clientId: string): Thread {
  let changed = false;
  const pending = t.pending.map((p) => {
    if (p.clientId !== clientId || p.status !== 'failed') return p;
    changed = true;
    return { ...p, status: 'pending' as const, error: undefined };
  });
  return changed ? { ...t, pending } : t;
}

export function dropPending(t: Thread, clientId: string): Thread {
  return { ...t, pending: t.pending.filter((p) => p.clientId !== clientId) };
}

export function isPending(t: Thread, clientId: string): boolean {
  return t.pending.some((p) => p.clientId === clientId && p.status === 'pending');
}

/** A client-chosen message id: 1..64 of A-Za-z0-9_- (docs/api.md). */
export function newClientId(): string {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  let s = '';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return 'c' + Date.now().toString(36) + '-' + s;
}

/**
 * Splits text into plain parts and safe http(s) links (also a bare www. address, linked as
 * https://). Never produces HTML. Nothing else becomes a link.
 */
export function linkify(text: string): Array<{ text: string; href?: string }> {
  const out: Array<{ text: string; href?: string }> = [];
  let last = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c !== 'h' && c !== 'H' && c !== 'w' && c !== 'W') continue;
    const u = urlAt(text, i);
    if (!u) continue;
    if (i > last) out.push({ text: text.slice(last, i) });
    out.push({ text: text.slice(i, u.end), href: u.href });
    last = u.end;
    i = u.end - 1;
  }
  if (last < text.length) out.push({ text: text.slice(last) });
  return out;
}

/** Local calendar day key (YYYY-MM-DD) of an RFC 3339 time. */
export function dayKey(iso: string): string {
  const d = new Date(iso);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

export function dayLabel(iso: string, now = new Date()): string {
  const d = new Date(iso);
  const key = dayKey(iso);
  if (key === dayKey(now.toISOString())) return 'Today';
  const y = new Date(now);
  y.setDate(y.getDate() - 1);
  if (key === dayKey(y.toISOString())) return 'Yesterday';
  return d.toLocaleDateString(undefined, { weekday: 'long', year: 'numeric', month: 'long', day: 'numeric' });
}

/**
 * The message before which "New messages" goes: the first one after the read marker the
 * conversation had when it was opened (`markSeq`), written by someone else. Null when
 * there is none among the messages held.
 */
export function dividerBefore(messages: readonly Message[], markSeq: number, myId: string): number | null {
  for (const m of messages) {
    if (m.seq > markSeq && m.senderId !== myId) return m.seq;
  }
  return null;
}

/** How many of `messages` are newer than `seq` (for "jump to newest"). */
export function countAfter(messages: readonly Message[], seq: number): number {
  let n = 0;
  for (let i = messages.length - 1; i >= 0 && messages[i].seq > seq; i--) n++;
  return n;
}
