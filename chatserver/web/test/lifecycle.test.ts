// Drafts, unsent messages across reloads, and the unread marker ("New messages").
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ApiClient } from '../src/api';
import { LocalState, MemoryStorage } from '../src/persist';
import { SESSION_KEY } from '../src/session';
import { ChatStore } from '../src/store';
import { countAfter, dividerBefore } from '../src/thread';
import type { Conversation } from '../src/types';
import { errorBody, FakeSocket, json, jwt, msg, session } from './helpers';

const conv = (over: Partial<Conversation> = {}): Conversation => ({
  id: 'c1',
  kind: 'direct',
  members: [
    { id: 'u_1', username: 'alice', displayName: 'Alice', role: 'member' },
    { id: 'u_2', username: 'bob', displayName: 'Bob', role: 'member' },
  ],
  lastSeq: 2,
  readSeq: 2,
  unread: 0,
  lastMessage: msg(2),
  lastActivity: msg(2).createdAt,
  createdAt: msg(1).createdAt,
  ...over,
});

/** A browser that was signed in before (so a page load asks the server to refresh). */
function wasSignedIn(): MemoryStorage {
  const s = new MemoryStorage();
  s.setItem(SESSION_KEY, 'u_1');
  return s;
}

describe('LocalState', () => {
  it('keeps drafts and pending messages per user, and forgets them on clear', () => {
    const storage = new MemoryStorage();
    const alice = new LocalState(storage, 'u_1');
    const bob = new LocalState(storage, 'u_2');
    alice.setDraft('c1', 'half a thought');
    bob.setDraft('c1', 'something else');
    alice.putPending({ clientId: 'k1', conversationId: 'c1', body: 'hi', createdAt: '2026-01-01T00:00:01Z', status: 'pending' });
    alice.putPending({ clientId: 'k0', conversationId: 'c1', body: 'first', createdAt: '2026-01-01T00:00:00Z', status: 'failed', error: 'no' });
    expect(new LocalState(storage, 'u_1').drafts()).toEqual({ c1: 'half a thought' });
    expect(new LocalState(storage, 'u_1').pending().map((p) => p.clientId)).toEqual(['k0', 'k1']);
    expect(bob.pending()).toEqual([]);
    alice.setDraft('c1', '');
    expect(alice.drafts()).toEqual({});
    alice.removePending(['k0']);
    expect(alice.pending().map((p) => p.clientId)).toEqual(['k1']);
    alice.clear();
    expect(alice.pending()).toEqual([]);
    expect(bob.drafts()).toEqual({ c1: 'something else' });
  });

  it('keeps the quote of a reply waiting to be sent', () => {
    const storage = new MemoryStorage();
    const replyTo = { id: 'm_1', seq: 1, senderId: 'u_2', excerpt: 'hello', deleted: false };
    new LocalState(storage, 'u_1').putPending({ clientId: 'k1', conversationId: 'c1', body: 'hi', createdAt: '2026-01-01T00:00:01Z', status: 'pending', replyTo });
    expect(new LocalState(storage, 'u_1').pending()[0].replyTo).toEqual(replyTo);
  });

  it('drops what it cannot trust when reading back', () => {
    const storage = new MemoryStorage();
    storage.setItem('parley:v1:u_1:pending', JSON.stringify({ 'bad id!': { clientId: 'bad id!' }, k2: { clientId: 'k2', conversationId: 'c1', body: 3 } }));
    storage.setItem('parley:v1:u_1:drafts', '{not json');
    const s = new LocalState(storage, 'u_1');
    expect(s.pending()).toEqual([]);
    expect(s.drafts()).toEqual({});
  });

  it('two tabs writing different entries keep both', () => {
    const storage = new MemoryStorage();
    const tab1 = new LocalState(storage, 'u_1');
    const tab2 = new LocalState(storage, 'u_1');
    tab1.setDraft('c1', 'one');
    tab2.setDraft('c2', 'two');
    expect(tab1.drafts()).toEqual({ c1: 'one', c2: 'two' });
  });
});

describe('unread divider and jump to newest', () => {
  it('goes before the first message after the read marker written by someone else', () => {
    const ms = [msg(1), msg(2, { senderId: 'u_1' }), msg(3, { senderId: 'u_1' }), msg(4), msg(5)];
    expect(dividerBefore(ms, 1, 'u_1')).toBe(4);
    expect(dividerBefore(ms, 4, 'u_1')).toBe(5);
    expect(dividerBefore(ms, 5, 'u_1')).toBeNull();
    expect(countAfter(ms, 3)).toBe(2);
    expect(countAfter(ms, 5)).toBe(0);
  });
});

describe('ChatStore: drafts, unsent messages and the read marker', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  function makeStore(storage: MemoryStorage, opts: { conversations?: Conversation[]; down?: () => boolean; page?: () => unknown } = {}) {
    const sockets: FakeSocket[] = [];
    const posts: Array<{ url: string; body: unknown }> = [];
    const fetchFn = vi.fn(async (url: string, init?: RequestInit) => {
      if (opts.down?.()) throw new TypeError('Failed to fetch');
      const body = init?.body ? JSON.parse(String(init.body)) : undefined;
      if (url.endsWith('/auth/refresh')) return json(200, session(jwt(900)));
      if (url.endsWith('/auth/logout')) return json(204, undefined);
      if (url.endsWith('/conversations')) return json(200, { conversations: opts.conversations ?? [conv()] });
      if (url.endsWith('/ws/ticket')) return json(200, { ticket: 'tk', expiresAt: '' });
      if (url.includes('/messages?')) return json(200, opts.page?.() ?? { messages: [msg(1), msg(2)], hasMore: false });
      if (init?.method === 'POST') {
        posts.push({ url, body });
        return json(200, {});
      }
      return json(404, errorBody('not_found'));
    });
    const store = new ChatStore({
      api: new ApiClient(fetchFn),
      createSocket: () => {
        const s = new FakeSocket();
        sockets.push(s);
        return s;
      },
      visible: () => true,
      storage,
      random: () => 0.5,
    });
    return { store, sockets, posts, sock: () => sockets[sockets.length - 1] };
  }

  async function signedIn(storage: MemoryStorage, opts: Parameters<typeof makeStore>[1] = {}) {
    // This browser was signed in before: the page load asks the server.
    if (!storage.getItem(SESSION_KEY)) storage.setItem(SESSION_KEY, 'u_1');
    const x = makeStore(storage, opts);
    await x.store.restore();
    await vi.advanceTimersByTimeAsync(0);
    x.sock().ready();
    await vi.advanceTimersByTimeAsync(0);
    return x;
  }

  it('keeps a draft per conversation across a reload, clears it on send and on sign-out', async () => {
    const storage = new MemoryStorage();
    const convs = [conv(), conv({ id: 'c2' })];
    const first = await signedIn(storage, { conversations: convs });
    first.store.setDraft('c1', 'for c1');
    first.store.setDraft('c2', 'for c2');
    expect(first.store.draft('c1')).toBe('for c1');

    // A reload: a new store over the same storage.
    const second = await signedIn(storage, { conversations: convs });
    expect(second.store.drafts.value).toEqual({ c1: 'for c1', c2: 'for c2' });
    second.store.send('c1', 'for c1');
    expect(second.store.draft('c1')).toBe('');
    expect(new LocalState(storage, 'u_1').drafts()).toEqual({ c2: 'for c2' });

    await second.store.logout();
    expect(second.store.drafts.value).toEqual({});
    expect(storage.data.size).toBe(0);
  });

  it('a message still sending survives a reload and goes out once, with its clientId, when the server is back', async () => {
    const storage = new MemoryStorage();
    let down = false;
    const first = await signedIn(storage, { down: () => down });
    await first.store.open('c1');
    // The server goes away; the message waits ("Sending…").
    down = true;
    first.sock().drop();
    const clientId = first.store.send('c1', 'written while the server was down');
    await vi.advanceTimersByTimeAsync(100);
    expect(first.store.thread('c1').pending).toMatchObject([{ clientId, status: 'pending' }]);
    expect(new LocalState(storage, 'u_1').pending()).toMatchObject([{ clientId, conversationId: 'c1', body: 'written while the server was down', status: 'pending' }]);

    // Reload while the server is still down: the page cannot sign in yet, and keeps trying.
    const second = makeStore(storage, { down: () => down });
    await second.store.restore();
    expect(second.store.auth.value).toBe('unreachable');
    await vi.advanceTimersByTimeAsync(2000);
    expect(second.store.auth.value).toBe('unreachable');
    down = false;
    await vi.advanceTimersByTimeAsync(5000); // the next automatic attempt
    expect(second.store.auth.value).toBe('signedIn');
    expect(second.store.thread('c1').pending).toMatchObject([{ clientId, status: 'pending', body: 'written while the server was down' }]);
    second.sock().ready();
    const sent = second.sock().ofType('send');
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({ clientId, conversationId: 'c1', body: 'written while the server was down' });
    // The server answers with the stored message (stored once, even if the first send had arrived).
    second.sock().frame({ type: 'ack', id: sent[0].id, message: msg(3, { senderId: 'u_1', clientId, body: 'written while the server was down' }) });
    expect(second.store.thread('c1').pending).toEqual([]);
    expect(new LocalState(storage, 'u_1').pending()).toEqual([]);
  });

  it('a restored message the server already stored is confirmed by the history page too', async () => {
    const storage = new MemoryStorage();
    new LocalState(storage, 'u_1').putPending({ clientId: 'kx', conversationId: 'c1', body: 'arrived before the reload', createdAt: msg(3).createdAt, status: 'pending' });
    const stored = msg(3, { senderId: 'u_1', clientId: 'kx', body: 'arrived before the reload' });
    const { store } = await signedIn(storage, { conversations: [conv({ lastSeq: 3, lastMessage: stored })], page: () => ({ messages: [msg(1), msg(2), stored], hasMore: false }) });
    await store.open('c1');
    expect(store.thread('c1').pending).toEqual([]);
    expect(store.thread('c1').messages.filter((m) => m.clientId === 'kx')).toHaveLength(1);
    expect(new LocalState(storage, 'u_1').pending()).toEqual([]);
  });

  it('forgets stored messages of conversations it is no longer in, and a discarded one', async () => {
    const storage = new MemoryStorage();
    const local = new LocalState(storage, 'u_1');
    local.putPending({ clientId: 'gone', conversationId: 'c9', body: 'x', createdAt: msg(1).createdAt, status: 'pending' });
    local.putPending({ clientId: 'failed1', conversationId: 'c1', body: 'y', createdAt: msg(1).createdAt, status: 'failed', error: 'Not sent' });
    const { store, sock } = await signedIn(storage);
    expect(local.pending().map((p) => p.clientId)).toEqual(['failed1']);
    // A failed one stays failed (with Retry), and is not sent by itself.
    expect(store.thread('c1').pending).toMatchObject([{ clientId: 'failed1', status: 'failed' }]);
    expect(sock().ofType('send')).toEqual([]);
    store.discard('c1', 'failed1');
    expect(local.pending()).toEqual([]);
  });

  it('marks where the unread messages start when a conversation is opened with some, and only then', async () => {
    const storage = new MemoryStorage();
    const { store, sock } = await signedIn(storage, {
      conversations: [conv({ lastSeq: 4, readSeq: 2, unread: 2, lastMessage: msg(4) }), conv({ id: 'c2' })],
      page: () => ({ messages: [msg(1), msg(2), msg(3), msg(4)], hasMore: false }),
    });
    await store.open('c1');
    expect(store.readMark.value).toEqual({ conversationId: 'c1', seq: 2 });
    expect(dividerBefore(store.thread('c1').messages, 2, 'u_1')).toBe(3);
    expect(store.conversations.value.c1.unread).toBe(0);
    // Messages read as they arrive do not move it.
    sock().frame({ type: 'message', message: msg(5) });
    expect(store.readMark.value).toEqual({ conversationId: 'c1', seq: 2 });
    // Another conversation, without unread messages: no marker.
    await store.open('c2');
    expect(store.readMark.value).toBeNull();
    // Back to the first: everything was read, no marker.
    await store.open('c1');
    expect(store.readMark.value).toBeNull();
  });
});

describe('change events (edits, deletions, reactions, settings)', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  async function setup() {
    const sockets: FakeSocket[] = [];
    const rest: Array<{ method: string; url: string }> = [];
    const fetchFn = vi.fn(async (url: string, init?: RequestInit) => {
      if (url.endsWith('/auth/refresh')) return json(200, session(jwt(900)));
      if (url.endsWith('/conversations')) return json(200, { conversations: [conv({ lastSeq: 3, lastMessage: msg(3) })] });
      if (url.endsWith('/ws/ticket')) return json(200, { ticket: 'tk', expiresAt: '' });
      if (url.includes('/messages?')) return json(200, { messages: [msg(1), msg(2, { senderId: 'u_1' }), msg(3, { replyTo: { id: 'm_c1_2', seq: 2, senderId: 'u_1', excerpt: 'message 2', deleted: false } })], hasMore: false });
      rest.push({ method: init?.method ?? 'GET', url });
      if (url.includes('/reactions/')) return json(200, msg(2, { senderId: 'u_1', reactions: [{ emoji: '👍', count: 1, me: true }] }));
      return json(404, errorBody('not_found'));
    });
    const store = new ChatStore({
      api: new ApiClient(fetchFn),
      createSocket: () => {
        const s = new FakeSocket();
        sockets.push(s);
        return s;
      },
      visible: () => true,
      storage: wasSignedIn(),
      random: () => 0.5,
    });
    await store.restore();
    await vi.advanceTimersByTimeAsync(0);
    sockets[0].ready();
    await store.open('c1');
    return { store, rest, sock: () => sockets[sockets.length - 1] };
  }
  const held = (store: ChatStore, seq: number) => store.thread('c1').messages.find((m) => m.seq === seq)!;

  it('moves the cursor over change events like messages, and asks for a hole only when there is one', async () => {
    const { store, sock } = await setup();
    expect(store.cursors.c1).toBe(3);
    sock().frame({ type: 'message_edited', conversationId: 'c1', messageId: 'm_c1_2', seq: 4, body: 'fixed', editedAt: '2026-11-23T12:01:00Z' });
    sock().frame({ type: 'message', message: msg(5) });
    expect(store.cursors.c1).toBe(5);
    const syncs = sock().ofType('sync').length;
    // Seq 6 is missing: the reaction at 7 waits, and a sync from 5 is asked for.
    sock().frame({ type: 'reaction', conversationId: 'c1', messageId: 'm_c1_1', seq: 7, emoji: '👍', userId: 'u_2', added: true, counts: [{ emoji: '👍', count: 1 }] });
    expect(store.cursors.c1).toBe(5);
    expect(sock().ofType('sync').slice(syncs)).toEqual([{ type: 'sync', cursors: { c1: 5 } }]);
    sock().frame({ type: 'message_deleted', conversationId: 'c1', messageId: 'm_c1_5', seq: 6, deletedBy: 'u_2', deletedAt: '2026-11-23T12:02:00Z', reason: 'deleted' });
    sock().frame({ type: 'reaction', conversationId: 'c1', messageId: 'm_c1_1', seq: 7, emoji: '👍', userId: 'u_2', added: true, counts: [{ emoji: '👍', count: 1 }] });
    expect(store.cursors.c1).toBe(7);
    expect(store.conversations.value.c1.lastSeq).toBe(7);
    // The events are not unread messages.
    expect(store.conversations.value.c1.unread).toBe(0);
  });

  it('applies an edit, a deletion (tombstone, quotes follow) and reactions, idempotently', async () => {
    const { store, sock } = await setup();
    const edit = { type: 'message_edited', conversationId: 'c1', messageId: 'm_c1_2', seq: 4, body: 'message 2, fixed', editedAt: '2026-11-23T12:01:00Z' };
    sock().frame(edit);
    sock().frame(edit);
    expect(held(store, 2)).toMatchObject({ body: 'message 2, fixed', editedAt: '2026-11-23T12:01:00Z' });
    expect(held(store, 3).replyTo).toMatchObject({ excerpt: 'message 2, fixed', deleted: false });

    sock().frame({ type: 'reaction', conversationId: 'c1', messageId: 'm_c1_2', seq: 5, emoji: '👍', userId: 'u_2', added: true, counts: [{ emoji: '👍', count: 1 }] });
    sock().frame({ type: 'reaction', conversationId: 'c1', messageId: 'm_c1_2', seq: 6, emoji: '👍', userId: 'u_1', added: true, counts: [{ emoji: '👍', count: 2 }] });
    sock().frame({ type: 'reaction', conversationId: 'c1', messageId: 'm_c1_2', seq: 7, emoji: '🎉', userId: 'u_2', added: true, counts: [{ emoji: '👍', count: 2 }, { emoji: '🎉', count: 1 }] });
    expect(held(store, 2).reactions).toEqual([
      { emoji: '👍', count: 2, me: true },
      { emoji: '🎉', count: 1, me: false },
    ]);
    expect(store.reactors.value.m_c1_2).toEqual({ '👍': ['u_2', 'u_1'], '🎉': ['u_2'] });
    sock().frame({ type: 'reaction', conversationId: 'c1', messageId: 'm_c1_2', seq: 8, emoji: '👍', userId: 'u_1', added: false, counts: [{ emoji: '👍', count: 1 }, { emoji: '🎉', count: 1 }] });
    expect(held(store, 2).reactions?.[0]).toEqual({ emoji: '👍', count: 1, me: false });

    const del = { type: 'message_deleted', conversationId: 'c1', messageId: 'm_c1_2', seq: 9, deletedBy: 'u_1', deletedAt: '2026-11-23T12:03:00Z', reason: 'deleted' };
    sock().frame(del);
    sock().frame(del);
    const t = held(store, 2);
    expect(t.body).toBe('');
    expect(t.deleted).toEqual({ by: 'u_1', at: '2026-11-23T12:03:00Z', reason: 'deleted' });
    expect(t.reactions).toBeUndefined();
    expect(t.editedAt).toBeUndefined();
    expect(held(store, 3).replyTo).toMatchObject({ excerpt: '', deleted: true });
    // A later edit of a tombstone (a replayed one) does not bring text back.
    sock().frame({ ...edit, seq: 4 });
    expect(held(store, 2).body).toBe('');
  });

  it('updates the list preview when the newest message is deleted, and notes a setting change', async () => {
    const { store, sock } = await setup();
    sock().frame({ type: 'message_deleted', conversationId: 'c1', messageId: 'm_c1_3', seq: 4, deletedAt: '2026-11-23T12:03:00Z', reason: 'expired' });
    expect(store.conversations.value.c1.lastMessage).toMatchObject({ id: 'm_c1_3', body: '', deleted: { reason: 'expired' } });
    sock().frame({ type: 'conversation_settings', conversationId: 'c1', seq: 5, expireAfter: 86400, changedBy: 'u_2', changedAt: '2026-11-23T12:04:00Z' });
    expect(store.conversations.value.c1.expireAfter).toBe(86400);
    expect(store.thread('c1').notices).toEqual([{ seq: 5, expireAfter: 86400, changedBy: 'u_2', changedAt: '2026-11-23T12:04:00Z' }]);
  });

  it('an unread message deleted before it was read no longer counts as unread', async () => {
    const { store, sock } = await setup();
    await store.open(null);
    sock().frame({ type: 'message', message: msg(4) });
    sock().frame({ type: 'message', message: msg(5) });
    expect(store.conversations.value.c1.unread).toBe(2);
    const del = { type: 'message_deleted', conversationId: 'c1', messageId: 'm_c1_4', seq: 6, deletedBy: 'u_2', deletedAt: '2026-11-23T12:03:00Z', reason: 'deleted' };
    sock().frame(del);
    sock().frame(del);
    expect(store.conversations.value.c1.unread).toBe(1);
  });

  it('sends edit, delete and react frames, and settles each with its ack or error', async () => {
    const { store, sock } = await setup();
    const editing = store.edit('c1', 'm_c1_2', 'new text');
    const f = sock().ofType('edit')[0];
    expect(f).toMatchObject({ conversationId: 'c1', messageId: 'm_c1_2', body: 'new text' });
    sock().frame({ type: 'ack', id: f.id, message: msg(2, { senderId: 'u_1', body: 'new text', editedAt: '2026-11-23T12:01:00Z' }) });
    await editing;
    expect(held(store, 2)).toMatchObject({ body: 'new text', editedAt: '2026-11-23T12:01:00Z' });

    const deleting = store.deleteMessage('c1', 'm_c1_1');
    const d = sock().ofType('delete')[0];
    expect(d).toMatchObject({ conversationId: 'c1', messageId: 'm_c1_1' });
    sock().frame({ type: 'error', id: d.id, code: 'forbidden', message: 'not yours' });
    await expect(deleting).rejects.toMatchObject({ code: 'forbidden' });
    expect(held(store, 1).deleted).toBeUndefined();

    const reacting = store.react('c1', 'm_c1_1', '👍', true);
    expect(sock().ofType('react')[0]).toMatchObject({ messageId: 'm_c1_1', emoji: '👍', remove: true });
    const settled = expect(reacting).rejects.toMatchObject({ code: 'timeout' });
    await vi.advanceTimersByTimeAsync(15_001);
    await settled;
  });

  it('an answer older than an event that came meanwhile is not applied over it', async () => {
    const { store, sock } = await setup();
    const reacting = store.react('c1', 'm_c1_2', '👍');
    const f = sock().ofType('react')[0];
    sock().frame({ type: 'reaction', conversationId: 'c1', messageId: 'm_c1_2', seq: 4, emoji: '👍', userId: 'u_1', added: true, counts: [{ emoji: '👍', count: 1 }] });
    sock().frame({ type: 'reaction', conversationId: 'c1', messageId: 'm_c1_2', seq: 5, emoji: '👍', userId: 'u_2', added: true, counts: [{ emoji: '👍', count: 2 }] });
    sock().frame({ type: 'ack', id: f.id, message: msg(2, { senderId: 'u_1', reactions: [{ emoji: '👍', count: 1, me: true }] }) });
    await reacting;
    expect(held(store, 2).reactions).toEqual([{ emoji: '👍', count: 2, me: true }]);
  });

  it('uses REST for a change when the socket is down, and sends replyTo with a reply', async () => {
    const { store, sock, rest } = await setup();
    store.send('c1', 'answer', held(store, 1));
    expect(sock().ofType('send')[0]).toMatchObject({ body: 'answer', replyTo: 'm_c1_1' });
    expect(store.thread('c1').pending[0].replyTo).toMatchObject({ id: 'm_c1_1', seq: 1, excerpt: 'message 1' });
    sock().drop(1006);
    await store.react('c1', 'm_c1_2', '👍');
    expect(rest.at(-1)).toMatchObject({ method: 'PUT', url: `/api/v1/conversations/c1/messages/m_c1_2/reactions/${encodeURIComponent('👍')}` });
    expect(held(store, 2).reactions).toEqual([{ emoji: '👍', count: 1, me: true }]);
  });
});
