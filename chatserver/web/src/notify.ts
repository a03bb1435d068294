// Notifications (issue 14), the pure parts: mentions in text, whether a message notifies,
// what a notification says, mute and do-not-disturb in words, and whether this device must
// subscribe to push again. No DOM here: the service worker (src/sw.ts) imports it too.

/** A member as mentions need them. */
export interface MentionMember {
  id: string;
  username: string;
  displayName: string;
}

/** A byte of a username, as the server's ParseMentions reads them (a-z 0-9 _ . -, any case). */
function isNameChar(ch: string | undefined): boolean {
  return !!ch && /^[A-Za-z0-9_.-]$/.test(ch);
}

/**
 * The `@word` being typed at the caret, for the composer's autocomplete: `start` is the
 * index of its "@" and `query` what follows up to the caret. Null when the caret is not in
 * one. The "@" must start the text or follow a character that is not a username character
 * or "@", as on the server (so alice@example.com does not start a mention).
 */
export function mentionQuery(text: string, caret: number): { start: number; query: string } | null {
  let i = caret;
  while (i > 0 && isNameChar(text[i - 1])) i--;
  if (i === 0 || text[i - 1] !== '@') return null;
  const at = i - 1;
  if (at > 0 && (isNameChar(text[at - 1]) || text[at - 1] === '@')) return null;
  const query = text.slice(i, caret);
  if (query.length > 32) return null;
  return { start: at, query };
}

/** Folds case and accents, so "eli" finds "Élise". */
function fold(s: string): string {
  return s.normalize('NFD').replace(/\p{M}/gu, '').toLowerCase();
}

/**
 * Members matching what is typed after "@": the username or a word of the display name
 * starts with it (case and accents ignored). Usernames that start with it come first, then
 * alphabetical. Me excepted; at most `limit`.
 */
export function filterMembers<M extends MentionMember>(members: readonly M[], query: string, meId: string, limit = 8): M[] {
  const q = fold(query);
  const scored: Array<{ m: M; rank: number }> = [];
  for (const m of members) {
    if (m.id === meId) continue;
    const user = m.username.toLowerCase();
    if (user.startsWith(q)) scored.push({ m, rank: 0 });
    else if (fold(m.displayName).split(/\s+/).some((w) => w.startsWith(q))) scored.push({ m, rank: 1 });
  }
  scored.sort((a, b) => a.rank - b.rank || a.m.username.localeCompare(b.m.username));
  return scored.slice(0, limit).map((x) => x.m);
}

/** The composer's autocomplete: where the `@query` is, the members it may be, the one selected. */
export interface MentionState<M extends MentionMember = MentionMember> {
  start: number;
  query: string;
  options: M[];
  index: number;
}

/**
 * The mention being typed at the caret and the members it may be (null: none, or nobody
 * matches). The same query as before (the caret moved, a re-render) keeps the selection; a
 * changed one selects its first match.
 */
export function mentionState<M extends MentionMember>(text: string, caret: number, members: readonly M[], meId: string, prev: MentionState<M> | null): MentionState<M> | null {
  const q = mentionQuery(text, caret);
  if (!q) return null;
  const options = filterMembers(members, q.query, meId);
  if (options.length === 0) return null;
  const keep = prev && prev.start === q.start && prev.query === q.query ? options.findIndex((o) => o.id === prev.options[prev.index]?.id) : -1;
  return { start: q.start, query: q.query, options, index: keep >= 0 ? keep : 0 };
}

/** Replaces the `@query` at `start`..`caret` by `@username ` and says where the caret goes. */
export function insertMention(text: string, start: number, caret: number, username: string): { text: string; caret: number } {
  const before = text.slice(0, start);
  let after = text.slice(caret);
  // The rest of a word the caret was inside goes too (it was the name being typed).
  while (after && isNameChar(after[0])) after = after.slice(1);
  const ins = `@${username} `;
  if (after.startsWith(' ')) after = after.slice(1);
  return { text: before + ins + after, caret: before.length + ins.length };
}

/** A piece of text: plain, or a mention of a member. */
export type MentionPart = string | { username: string; id: string; me: boolean };

/**
 * Splits text into plain runs and the mentions of members the server found in it (`ids`:
 * the message's `mentions`), by the server's rule (ParseMentions): "@" at the start or
 * after a character that is not a username character or "@", then the username, without
 * a trailing "." or "-". Only members whose id is in `ids` are marked: the server decides
 * who is mentioned, the client only shows it.
 */
export function mentionParts(text: string, byUsername: ReadonlyMap<string, string>, ids: readonly string[], meId: string): MentionPart[] {
  if (ids.length === 0 || !text.includes('@')) return [text];
  const out: MentionPart[] = [];
  let from = 0;
  for (let i = 0; i < text.length; i++) {
    if (text[i] !== '@' || (i > 0 && (isNameChar(text[i - 1]) || text[i - 1] === '@'))) continue;
    let j = i + 1;
    while (j < text.length && isNameChar(text[j])) j++;
    let name = text.slice(i + 1, j);
    while (name.endsWith('.') || name.endsWith('-')) name = name.slice(0, -1);
    const id = byUsername.get(name.toLowerCase());
    if (id && ids.includes(id)) {
      if (i > from) out.push(text.slice(from, i));
      out.push({ username: text.slice(i + 1, i + 1 + name.length), id, me: id === meId });
      from = i + 1 + name.length;
    }
    i = j - 1;
  }
  if (from < text.length) out.push(text.slice(from));
  return out;
}

/** The server's "until unmuted" (9999-12-31T00:00:00Z): a mute or DND from this year on is "always". */
const FOREVER_YEAR = 9999;

export function isForever(iso: string): boolean {
  return new Date(iso).getUTCFullYear() >= FOREVER_YEAR;
}

/** Whether a mute (or do-not-disturb) that lasts until `until` is on at `now`. */
export function activeUntil(until: string | null | undefined, now: number): boolean {
  if (!until) return false;
  const t = Date.parse(until);
  return Number.isFinite(t) && t > now;
}

/** The user's notification settings (GET /me/notifications). */
export interface NotifySettings {
  pushPreview: boolean;
  mentionsBreakMute: boolean;
  dndUntil: string | null;
}

/** What the in-tab decision looks at for one new message. */
export interface NotifyInput {
  /** The person opted in on this device and the browser granted the permission. */
  enabled: boolean;
  /** The page is visible (then nothing is notified: the person sees the app). */
  visible: boolean;
  meId: string;
  message: { senderId: string; mentions?: readonly string[]; deleted?: unknown };
  /** The conversation's `mutedUntil`. */
  mutedUntil?: string | null;
  settings: NotifySettings | null;
  now: number;
}

/** Why a message notifies or not ("message" and "mention" notify). */
export type NotifyDecision = 'off' | 'visible' | 'own' | 'dnd' | 'muted' | 'message' | 'mention';

/**
 * Whether a new message is shown as an in-tab notification, by the rules the server pushes
 * by (docs/api.md "Notifications"): not my own, not while the page is visible, not in
 * do-not-disturb, not in a muted conversation unless it mentions me and mentions break
 * mutes.
 */
export function notifyDecision(i: NotifyInput): NotifyDecision {
  if (!i.enabled) return 'off';
  if (i.message.senderId === i.meId || i.message.deleted) return 'own';
  if (i.visible) return 'visible';
  if (activeUntil(i.settings?.dndUntil, i.now)) return 'dnd';
  const mention = (i.message.mentions ?? []).includes(i.meId);
  if (activeUntil(i.mutedUntil, i.now) && !(mention && i.settings?.mentionsBreakMute)) return 'muted';
  return mention ? 'mention' : 'message';
}

export function notifies(d: NotifyDecision): boolean {
  return d === 'message' || d === 'mention';
}

/** The JSON a push carries (chatserver/push Payload). */
export interface PushPayload {
  type?: string;
  conversationId?: string;
  messageId?: string;
  seq?: number;
  kind?: 'direct' | 'group' | string;
  title?: string;
  sender?: { id: string; displayName: string };
  unread?: number;
  mention?: boolean;
  count?: number;
  body?: string;
}

export interface NotificationSpec {
  title: string;
  options: {
    body: string;
    tag: string;
    renotify: boolean;
    icon: string;
    badge: string;
    timestamp?: number;
    data: { conversationId: string | null; messageId: string | null };
  };
}

/** The app's icon (public/icon.png) for notifications. */
export const NOTIFY_ICON = '/icon.png';

/**
 * What a notification about a push (or a message seen in the tab) says. Title: the group's
 * title or the sender's name (the server chose it; "Parley" when the payload has none, as
 * for an end-to-end encrypted conversation). Body: the preview only when the payload has
 * one (the person turned pushPreview on), else "New message" or "N new messages" (the
 * unread count, or the burst's count). The tag is the conversation id, so a burst updates
 * one notification in place and the push and the in-tab one are the same notification;
 * only a mention makes it sound again (renotify).
 */
export function notificationFor(p: PushPayload | null | undefined, icon = NOTIFY_ICON): NotificationSpec {
  const conv = typeof p?.conversationId === 'string' && p.conversationId ? p.conversationId : null;
  const title = (typeof p?.title === 'string' && p.title.trim()) || 'Parley';
  const n = Math.max(num(p?.unread), num(p?.count), 1);
  let body = n > 1 ? `${n} new messages` : 'New message';
  if (typeof p?.body === 'string' && p.body !== '') {
    const who = p.kind === 'group' && p.sender?.displayName ? `${p.sender.displayName}: ` : '';
    body = who + p.body;
  }
  const mention = p?.mention === true;
  return {
    title,
    options: {
      body,
      tag: conv ?? 'parley',
      renotify: mention,
      icon,
      badge: icon,
      data: { conversationId: conv, messageId: typeof p?.messageId === 'string' ? p.messageId : null },
    },
  };
}

function num(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) && v > 0 ? Math.floor(v) : 0;
}

/** The server's preview length (push.PreviewChars). */
export const PREVIEW_CHARS = 100;

export function previewOf(text: string): string {
  const cps = [...text.replace(/\s+/g, ' ').trim()];
  return cps.length <= PREVIEW_CHARS ? cps.join('') : cps.slice(0, PREVIEW_CHARS).join('') + '…';
}

function hm(d: Date): string {
  return `${d.getHours()}:${String(d.getMinutes()).padStart(2, '0')}`;
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** A time of day; the UI passes the browser's locale format (as the message times use). */
export type TimeFormat = (d: Date) => string;

/** When something ends, in local time: "14:30", "tomorrow 8:00", "Mon 14:30" or "12 Dec 14:30". */
export function untilText(iso: string, now: number, hhmm: TimeFormat = hm): string {
  const d = new Date(iso);
  const today = new Date(now);
  const days = Math.round((new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime() - new Date(today.getFullYear(), today.getMonth(), today.getDate()).getTime()) / 86_400_000);
  if (days === 0) return hhmm(d);
  if (days === 1) return `tomorrow ${hhmm(d)}`;
  if (days > 1 && days < 7) return `${DAYS[d.getDay()]} ${hhmm(d)}`;
  return `${d.getDate()} ${MONTHS[d.getMonth()]} ${hhmm(d)}`;
}

/** A conversation's mute in words: null when not muted, "Muted" when until unmuted, else "Muted until 14:30". */
export function muteText(mutedUntil: string | null | undefined, now: number, fmt?: TimeFormat): string | null {
  if (!activeUntil(mutedUntil, now)) return null;
  return isForever(mutedUntil!) ? 'Muted' : `Muted until ${untilText(mutedUntil!, now, fmt)}`;
}

/** Do-not-disturb in words. */
export function dndText(dndUntil: string | null | undefined, now: number, fmt?: TimeFormat): string {
  if (!activeUntil(dndUntil, now)) return 'Off';
  return isForever(dndUntil!) ? 'On until you turn it off' : `On until ${untilText(dndUntil!, now, fmt)}`;
}

/** The next 8:00 in local time after `now` (DND "until tomorrow 8:00"; before 8:00 it is today's). */
export function nextMorning(now: number): Date {
  const d = new Date(now);
  const at = new Date(d.getFullYear(), d.getMonth(), d.getDate(), 8, 0, 0, 0);
  if (at.getTime() <= now) at.setDate(at.getDate() + 1);
  return at;
}

/** The mute choices of the server (PUT …/notifications `{"mute"}`). */
export const MUTE_CHOICES = [
  { value: '1h', label: 'For 1 hour' },
  { value: '8h', label: 'For 8 hours' },
  { value: '1w', label: 'For 1 week' },
  { value: 'always', label: 'Until I unmute' },
] as const;

/** What this device must do about its push subscription at start-up or after opting in. */
export type SubscribeAction = 'none' | 'subscribe' | 'resubscribe' | 'register';

/**
 * The re-subscribe decision. Nothing unless the person opted in on this device, the browser
 * granted the permission and the server has a VAPID key. Without a subscription: subscribe.
 * With one made for another key (the server's key was rotated: its subscriptions are gone
 * on the server and the push service would refuse the new key's pushes): unsubscribe and
 * subscribe again. Otherwise tell the server again (it may have dropped the subscription,
 * e.g. after a 410; the POST is idempotent by endpoint).
 */
export function subscribeAction(i: {
  optedIn: boolean;
  permission: string;
  serverKey: string | null;
  /** The key this device last subscribed with (localStorage). */
  storedKey: string | null;
  /** The applicationServerKey of the browser's current subscription, base64url, if it has one. */
  subscription: { key: string | null } | null;
}): SubscribeAction {
  if (!i.optedIn || i.permission !== 'granted' || !i.serverKey) return 'none';
  if (!i.subscription) return 'subscribe';
  if (i.storedKey !== i.serverKey || (i.subscription.key !== null && i.subscription.key !== i.serverKey)) return 'resubscribe';
  return 'register';
}

/** Bytes as base64url without padding (how the server writes keys). */
export function toBase64Url(buf: ArrayBuffer | Uint8Array | null): string | null {
  if (!buf) return null;
  const bytes = buf instanceof Uint8Array ? buf : new Uint8Array(buf);
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** base64url (with or without padding) to bytes; null when it is not base64url. */
export function fromBase64Url(s: string): Uint8Array<ArrayBuffer> | null {
  if (!/^[A-Za-z0-9_-]*={0,2}$/.test(s)) return null;
  try {
    const bin = atob(s.replace(/-/g, '+').replace(/_/g, '/').replace(/=+$/, '') + '='.repeat((4 - (s.replace(/=+$/, '').length % 4)) % 4));
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  } catch {
    return null;
  }
}

/**
 * Whether an unread message of this conversation mentions me (the sidebar says "@ mentioned
 * you" until it is read): the list's last message, or any held message after my read marker.
 */
export function mentionsMeUnread(
  c: { unread: number; readSeq: number; lastMessage: { seq: number; senderId: string; mentions?: readonly string[] } | null },
  held: ReadonlyArray<{ seq: number; senderId: string; mentions?: readonly string[] }>,
  meId: string,
): boolean {
  if (c.unread <= 0) return false;
  const hit = (m: { seq: number; senderId: string; mentions?: readonly string[] }) => m.seq > c.readSeq && m.senderId !== meId && !!m.mentions?.includes(meId);
  if (c.lastMessage && hit(c.lastMessage)) return true;
  for (let i = held.length - 1; i >= 0 && held[i].seq > c.readSeq; i--) if (hit(held[i])) return true;
  return false;
}
