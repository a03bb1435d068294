import { describe, expect, it } from 'vitest';
import {
  activeUntil,
  dndText,
  filterMembers,
  fromBase64Url,
  insertMention,
  mentionParts,
  mentionQuery,
  mentionsMeUnread,
  mentionState,
  muteText,
  nextMorning,
  notificationFor,
  notifyDecision,
  previewOf,
  subscribeAction,
  toBase64Url,
  type NotifyInput,
} from '../src/notify';

const members = [
  { id: 'u-me', username: 'alice', displayName: 'Alice Liddell' },
  { id: 'u-bob', username: 'bob', displayName: 'Robert Brown' },
  { id: 'u-bo', username: 'bo.diddley', displayName: 'Bo' },
  { id: 'u-el', username: 'ezra', displayName: 'Élise Ezra' },
];
const byName = new Map(members.map((m) => [m.username, m.id]));

describe('mentionQuery (the @word at the caret)', () => {
  it('finds the @ and what follows up to the caret', () => {
    expect(mentionQuery('@', 1)).toEqual({ start: 0, query: '' });
    expect(mentionQuery('hi @bo', 6)).toEqual({ start: 3, query: 'bo' });
    expect(mentionQuery('hi @bo.d', 8)).toEqual({ start: 3, query: 'bo.d' });
    // Caret inside the word: only what is before it.
    expect(mentionQuery('hi @bobby', 6)).toEqual({ start: 3, query: 'bo' });
    expect(mentionQuery('(@b', 3)).toEqual({ start: 1, query: 'b' });
  });
  it('is not a mention after a name character or another @, nor after a space', () => {
    expect(mentionQuery('alice@example', 13)).toBeNull();
    expect(mentionQuery('@@bo', 4)).toBeNull();
    expect(mentionQuery('hi @bo and', 10)).toBeNull();
    expect(mentionQuery('no at here', 5)).toBeNull();
    expect(mentionQuery('@bo ', 4)).toBeNull();
  });
});

describe('filterMembers', () => {
  it('matches username or a display-name word prefix, accents and case folded, usernames first, never me', () => {
    expect(filterMembers(members, '', 'u-me').map((m) => m.id)).toEqual(['u-bo', 'u-bob', 'u-el']);
    expect(filterMembers(members, 'bo', 'u-me').map((m) => m.id)).toEqual(['u-bo', 'u-bob']);
    expect(filterMembers(members, 'ROB', 'u-me').map((m) => m.id)).toEqual(['u-bob']);
    expect(filterMembers(members, 'eli', 'u-me').map((m) => m.id)).toEqual(['u-el']);
    expect(filterMembers(members, 'ali', 'u-me')).toEqual([]);
    expect(filterMembers(members, 'ali', 'u-bob').map((m) => m.id)).toEqual(['u-me']);
    expect(filterMembers(members, '', 'u-me', 2)).toHaveLength(2);
  });
});

describe('mentionState (the list under the composer)', () => {
  it('lists matches for the @query at the caret, first selected; none when nothing matches', () => {
    const s = mentionState('hi @b', 5, members, 'u-me', null)!;
    expect(s).toMatchObject({ start: 3, query: 'b', index: 0 });
    expect(s.options.map((m) => m.id)).toEqual(['u-bo', 'u-bob']);
    expect(mentionState('hi @zz', 6, members, 'u-me', null)).toBeNull();
    expect(mentionState('hi', 2, members, 'u-me', null)).toBeNull();
  });
  it('keeps the selection for the same query, starts over for a new one', () => {
    const s = { ...mentionState('@b', 2, members, 'u-me', null)!, index: 1 };
    expect(mentionState('@b', 2, members, 'u-me', s)!.index).toBe(1);
    const t = mentionState('@bob', 4, members, 'u-me', s)!;
    expect(t.options.map((m) => m.id)).toEqual(['u-bob']);
    expect(t.index).toBe(0);
  });
});

describe('insertMention', () => {
  it('replaces the typed @query with @username and a space, caret after it', () => {
    expect(insertMention('hi @bo', 3, 6, 'bob')).toEqual({ text: 'hi @bob ', caret: 8 });
    // In the middle of the text: the rest of the word goes, one space kept.
    expect(insertMention('hi @bo there', 3, 6, 'bob')).toEqual({ text: 'hi @bob there', caret: 8 });
    expect(insertMention('hi @boXX there', 3, 6, 'bob')).toEqual({ text: 'hi @bob there', caret: 8 });
    expect(insertMention('@', 0, 1, 'ezra')).toEqual({ text: '@ezra ', caret: 6 });
  });
});

describe('mentionParts (highlighting)', () => {
  it('marks the mentioned members found by the server rule, me apart', () => {
    expect(mentionParts('hi @bob and @alice.', byName, ['u-bob', 'u-me'], 'u-me')).toEqual([
      'hi ',
      { username: 'bob', id: 'u-bob', me: false },
      ' and ',
      { username: 'alice', id: 'u-me', me: true },
      '.',
    ]);
  });
  it('keeps the case as written and matches usernames case-insensitively', () => {
    expect(mentionParts('@Bob!', byName, ['u-bob'], 'u-me')).toEqual([{ username: 'Bob', id: 'u-bob', me: false }, '!']);
  });
  it('marks only ids the server listed, and no e-mail address or unknown name', () => {
    expect(mentionParts('@bob @ezra', byName, ['u-ezra-not'], 'u-me')).toEqual(['@bob @ezra']);
    expect(mentionParts('mail bob@bob.com or @nobody', byName, ['u-bob'], 'u-me')).toEqual(['mail bob@bob.com or @nobody']);
    expect(mentionParts('@@bob', byName, ['u-bob'], 'u-me')).toEqual(['@@bob']);
    expect(mentionParts('plain', byName, [], 'u-me')).toEqual(['plain']);
  });
  it('drops a trailing "." or "-" from the name, as the server does, and keeps dotted usernames', () => {
    expect(mentionParts('ask @bo.diddley.', byName, ['u-bo'], 'u-me')).toEqual(['ask ', { username: 'bo.diddley', id: 'u-bo', me: false }, '.']);
    expect(mentionParts('@bob--', byName, ['u-bob'], 'u-me')).toEqual([{ username: 'bob', id: 'u-bob', me: false }, '--']);
  });
});

describe('notifyDecision', () => {
  const now = Date.parse('2026-12-03T10:00:00Z');
  const base: NotifyInput = {
    enabled: true,
    visible: false,
    meId: 'u-me',
    message: { senderId: 'u-bob' },
    mutedUntil: null,
    settings: { pushPreview: false, mentionsBreakMute: true, dndUntil: null },
    now,
  };
  const later = '2026-12-03T11:00:00Z';
  const past = '2026-12-03T09:00:00Z';
  it('notifies a message from someone else while hidden', () => {
    expect(notifyDecision(base)).toBe('message');
  });
  it('does not notify my own message, a visible page, or when not enabled on this device', () => {
    expect(notifyDecision({ ...base, message: { senderId: 'u-me' } })).toBe('own');
    expect(notifyDecision({ ...base, visible: true })).toBe('visible');
    expect(notifyDecision({ ...base, enabled: false })).toBe('off');
  });
  it('is silent in a muted conversation unless I am mentioned and mentions break mutes', () => {
    expect(notifyDecision({ ...base, mutedUntil: later })).toBe('muted');
    expect(notifyDecision({ ...base, mutedUntil: '9999-12-31T00:00:00Z' })).toBe('muted');
    expect(notifyDecision({ ...base, mutedUntil: past })).toBe('message');
    const mention = { ...base, message: { senderId: 'u-bob', mentions: ['u-me'] } };
    expect(notifyDecision({ ...mention, mutedUntil: later })).toBe('mention');
    expect(notifyDecision({ ...mention, mutedUntil: later, settings: { ...base.settings!, mentionsBreakMute: false } })).toBe('muted');
    expect(notifyDecision({ ...base, message: { senderId: 'u-bob', mentions: ['u-other'] }, mutedUntil: later })).toBe('muted');
  });
  it('is silent in do-not-disturb, even for mentions; an ended DND is off', () => {
    expect(notifyDecision({ ...base, settings: { ...base.settings!, dndUntil: later } })).toBe('dnd');
    expect(notifyDecision({ ...base, message: { senderId: 'u-bob', mentions: ['u-me'] }, settings: { ...base.settings!, dndUntil: later } })).toBe('dnd');
    expect(notifyDecision({ ...base, settings: { ...base.settings!, dndUntil: past } })).toBe('message');
  });
  it('notifies when the settings are not loaded (the server default), but not a mention through a mute then', () => {
    expect(notifyDecision({ ...base, settings: null })).toBe('message');
    expect(notifyDecision({ ...base, settings: null, mutedUntil: later, message: { senderId: 'u-bob', mentions: ['u-me'] } })).toBe('muted');
  });
});

describe('notificationFor (push payload → notification)', () => {
  const p = { type: 'message', conversationId: 'c1', messageId: 'm9', seq: 9, kind: 'direct', title: 'Bob', sender: { id: 'u-bob', displayName: 'Bob' }, unread: 1, count: 1 };
  it('titles with the payload title, no text without a preview, tag = conversation', () => {
    const n = notificationFor(p);
    expect(n.title).toBe('Bob');
    expect(n.options.body).toBe('New message');
    expect(n.options.tag).toBe('c1');
    expect(n.options.renotify).toBe(false);
    expect(n.options.icon).toBe('/icon.png');
    expect(n.options.data).toEqual({ conversationId: 'c1', messageId: 'm9' });
  });
  it('says how many: the unread count or the burst', () => {
    expect(notificationFor({ ...p, unread: 4 }).options.body).toBe('4 new messages');
    expect(notificationFor({ ...p, unread: 0, count: 3 }).options.body).toBe('3 new messages');
  });
  it('shows the preview only when the payload has one; in a group with the sender', () => {
    expect(notificationFor({ ...p, body: 'lunch?' }).options.body).toBe('lunch?');
    expect(notificationFor({ ...p, kind: 'group', title: 'Team', body: 'lunch?' })).toMatchObject({ title: 'Team', options: { body: 'Bob: lunch?' } });
  });
  it('renotifies only for a mention', () => {
    expect(notificationFor({ ...p, mention: true }).options.renotify).toBe(true);
  });
  it('a minimal or broken payload still gives a notification that says nothing more', () => {
    expect(notificationFor({ type: 'message', conversationId: 'c2' })).toMatchObject({ title: 'Parley', options: { body: 'New message', tag: 'c2' } });
    expect(notificationFor(null)).toMatchObject({ title: 'Parley', options: { body: 'New message', tag: 'parley', data: { conversationId: null } } });
    expect(notificationFor({ title: 42, unread: -3, count: 'x' } as never)).toMatchObject({ title: 'Parley', options: { body: 'New message' } });
  });
  it('previews like the server: 100 characters, one line', () => {
    expect(previewOf('a\n  b')).toBe('a b');
    const long = 'é'.repeat(150);
    expect([...previewOf(long)]).toHaveLength(101);
    expect(previewOf(long).endsWith('…')).toBe(true);
  });
});

describe('subscribeAction (re-subscribe decision)', () => {
  const on = { optedIn: true, permission: 'granted', serverKey: 'K2', storedKey: 'K2', subscription: { key: 'K2' } };
  it('does nothing without opt-in, permission or server key', () => {
    expect(subscribeAction({ ...on, optedIn: false })).toBe('none');
    expect(subscribeAction({ ...on, permission: 'default' })).toBe('none');
    expect(subscribeAction({ ...on, permission: 'denied' })).toBe('none');
    expect(subscribeAction({ ...on, serverKey: null })).toBe('none');
  });
  it('subscribes without a subscription', () => {
    expect(subscribeAction({ ...on, subscription: null })).toBe('subscribe');
  });
  it('subscribes again when the server answers another key', () => {
    expect(subscribeAction({ ...on, storedKey: 'K1', subscription: { key: 'K1' } })).toBe('resubscribe');
    expect(subscribeAction({ ...on, storedKey: null })).toBe('resubscribe');
    expect(subscribeAction({ ...on, subscription: { key: 'K1' } })).toBe('resubscribe');
  });
  it('otherwise sends the same subscription again', () => {
    expect(subscribeAction(on)).toBe('register');
    expect(subscribeAction({ ...on, subscription: { key: null } })).toBe('register');
  });
  it('base64url round trip (applicationServerKey)', () => {
    const bytes = new Uint8Array([4, 255, 0, 62, 63, 128]);
    const s = toBase64Url(bytes)!;
    expect(s).not.toMatch(/[+/=]/);
    expect([...fromBase64Url(s)!]).toEqual([...bytes]);
    expect(fromBase64Url('not base64!')).toBeNull();
  });
});

describe('mute and do-not-disturb in words', () => {
  const now = new Date(2026, 11, 3, 10, 0).getTime();
  it('says until when', () => {
    expect(muteText(null, now)).toBeNull();
    expect(muteText(new Date(2026, 11, 3, 9, 0).toISOString(), now)).toBeNull();
    expect(muteText(new Date(2026, 11, 3, 14, 30).toISOString(), now)).toBe('Muted until 14:30');
    expect(muteText(new Date(2026, 11, 4, 8, 0).toISOString(), now)).toBe('Muted until tomorrow 8:00');
    expect(muteText(new Date(2026, 11, 7, 9, 5).toISOString(), now)).toBe('Muted until Mon 9:05');
    expect(muteText(new Date(2026, 11, 12, 9, 5).toISOString(), now)).toBe('Muted until 12 Dec 9:05');
    expect(muteText('9999-12-31T00:00:00Z', now)).toBe('Muted');
    expect(dndText('9999-12-31T00:00:00Z', now)).toBe('On until you turn it off');
    expect(dndText(null, now)).toBe('Off');
    expect(activeUntil('garbage', now)).toBe(false);
  });
  it('"until tomorrow 8:00" is the next 8:00', () => {
    expect(nextMorning(now).getTime()).toBe(new Date(2026, 11, 4, 8, 0).getTime());
    expect(nextMorning(new Date(2026, 11, 3, 6, 0).getTime()).getTime()).toBe(new Date(2026, 11, 3, 8, 0).getTime());
  });
});

describe('mentionsMeUnread ("@ mentioned you" in the list)', () => {
  const c = { unread: 2, readSeq: 5, lastMessage: { seq: 7, senderId: 'u-bob' } };
  it('finds a mention of me after the read marker, in the last message or the held ones', () => {
    expect(mentionsMeUnread({ ...c, lastMessage: { seq: 7, senderId: 'u-bob', mentions: ['u-me'] } }, [], 'u-me')).toBe(true);
    expect(mentionsMeUnread(c, [{ seq: 6, senderId: 'u-bob', mentions: ['u-me'] }, { seq: 7, senderId: 'u-bob' }], 'u-me')).toBe(true);
  });
  it('not once read, not before the marker, not my own, not someone else', () => {
    expect(mentionsMeUnread({ ...c, unread: 0, lastMessage: { seq: 7, senderId: 'u-bob', mentions: ['u-me'] } }, [], 'u-me')).toBe(false);
    expect(mentionsMeUnread(c, [{ seq: 5, senderId: 'u-bob', mentions: ['u-me'] }, { seq: 7, senderId: 'u-bob' }], 'u-me')).toBe(false);
    expect(mentionsMeUnread(c, [{ seq: 6, senderId: 'u-me', mentions: ['u-me'] }], 'u-me')).toBe(false);
    expect(mentionsMeUnread(c, [{ seq: 6, senderId: 'u-bob', mentions: ['u-x'] }], 'u-me')).toBe(false);
  });
});
