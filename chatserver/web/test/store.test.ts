import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ApiClient } from '../src/api';
import { MemoryStorage } from '../src/persist';
import { SESSION_KEY } from '../src/session';
import { ChatStore } from '../src/store';
import type { Conversation } from '../src/types';
import { errorBody, FakeSocket, json, jwt, msg, session } from './helpers';

/** A browser that was signed in before (so a page load asks the server to refresh). */
function signedInBefore(): MemoryStorage {
  const s = new MemoryStorage();
  s.setItem(SESSION_KEY, 'u_1');
  return s;
}

const conv = (over: Partial<Conversation> = {}): Conversation => ({
  id: 'c1',
  kind: 'direct',
  members: [
    { id: 'u_1', username: 'alice', displayName: 'Alice', role: 'member', online: true },
    { id: 'u_2', username: 'bob', displayName: 'Bob', role: 'member', online: false },
  ],
  lastSeq: 2,
  readSeq: 2,
  unread: 0,
  lastMessage: msg(2),
  lastActivity: msg(2).createdAt,
  createdAt: msg(1).createdAt,
  ...over,
});

describe('ChatStore', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  async function setup(restPost?: (url: string, body: unknown) => Response) {
    const sockets: FakeSocket[] = [];
    let token = jwt(900);
    const fetchFn = vi.fn(async (url: string, init?: RequestInit) => {
      const body = init?.body ? JSON.parse(String(init.body)) : undefined;
      if (url.endsWith('/auth/refresh')) {
        token = jwt(900);
        return json(200, session(token));
      }
      if (url.endsWith('/conversations')) return json(200, { conversations: [conv()] });
      if (url.endsWith('/ws/ticket')) return json(200, { ticket: 'tk', expiresAt: '' });
      if (url.includes('/messages?')) return json(200, { messages: [msg(1), msg(2)], hasMore: false });
      if (restPost && init?.method === 'POST') return restPost(url, body);
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
      ackTimeoutMs: 15_000,
      storage: signedInBefore(),
      random: () => 0.5, // no jitter: 0, 1, 2, 5, 10, 20, then every 30 s
    });
    await store.restore();
    await vi.advanceTimersByTimeAsync(0);
    sockets[0].ready();
    await vi.advanceTimersByTimeAsync(0);
    await store.open('c1');
    return { store, sockets, fetchFn, sock: () => sockets[sockets.length - 1] };
  }

  it('confirms a pending message by its ack, once, even when the echo arrives too', async () => {
    const { store, sock } = await setup();
    expect(store.auth.value).toBe('signedIn');
    const clientId = store.send('c1', 'hello');
    expect(store.thread('c1').pending).toMatchObject([{ clientId, status: 'pending', body: 'hello' }]);
    const frame = sock().ofType('send')[0];
    expect(frame).toMatchObject({ conversationId: 'c1', clientId, body: 'hello' });
    const stored = msg(3, { senderId: 'u_1', clientId, body: 'hello' });
    sock().frame({ type: 'message', message: stored });
    sock().frame({ type: 'ack', id: frame.id, message: stored });
    const t = store.thread('c1');
    expect(t.pending).toEqual([]);
    expect(t.messages.map((m) => m.seq)).toEqual([1, 2, 3]);
    expect(store.conversations.value.c1.lastMessage?.body).toBe('hello');
    // No late timeout turns it into a failure.
    await vi.advanceTimersByTimeAsync(20_000);
    expect(store.thread('c1').pending).toEqual([]);
  });

  it('marks a message failed with words on an error frame, and retries with the same clientId', async () => {
    const { store, sock } = await setup();
    const clientId = store.send('c1', 'x'.repeat(10));
    const first = sock().ofType('send')[0];
    sock().frame({ type: 'error', id: first.id, code: 'rate_limited', message: 'slow down', retryAfter: 3 });
    expect(store.thread('c1').pending[0]).toMatchObject({ status: 'failed' });
    expect(store.thread('c1').pending[0].error).toMatch(/wait 3 seconds/);
    store.retry('c1', clientId);
    expect(store.thread('c1').pending[0].status).toBe('pending');
    const second = sock().ofType('send')[1];
    expect(second.clientId).toBe(clientId);
    expect(second.id).not.toBe(first.id);
    sock().frame({ type: 'ack', id: second.id, message: msg(3, { senderId: 'u_1', clientId }) });
    expect(store.thread('c1').pending).toEqual([]);
  });

  it('sends a message again, with the same clientId, when the socket dropped before its ack', async () => {
    const { store, sock } = await setup();
    const clientId = store.send('c1', 'are you there?');
    const first = sock().ofType('send')[0];
    sock().drop();
    await vi.advanceTimersByTimeAsync(0); // immediate reconnect
    sock().ready();
    const again = sock().ofType('send');
    expect(again.length).toBe(1);
    expect(again[0]).toMatchObject({ clientId, body: 'are you there?' });
    expect(again[0].id).not.toBe(first.id);
    sock().frame({ type: 'ack', id: again[0].id, message: msg(3, { senderId: 'u_1', clientId, body: 'are you there?' }) });
    expect(store.thread('c1').pending).toEqual([]);
    // The first request's timer is gone: nothing turns it into a failure later.
    await vi.advanceTimersByTimeAsync(20_000);
    expect(store.thread('c1').messages.filter((m) => m.clientId === clientId).length).toBe(1);
  });

  it('sends attachment ids with a message, and the same ids when it goes out again after a reconnect', async () => {
    const { store, sock } = await setup();
    const files = [
      { id: 'a_1', name: 'photo.jpg', contentType: 'image/jpeg', size: 10, width: 4, height: 3 },
      { id: 'a_2', name: 'doc.pdf', contentType: 'application/pdf', size: 20 },
    ];
    const clientId = store.send('c1', '', undefined, files);
    expect(store.thread('c1').pending[0]).toMatchObject({ clientId, body: '', attachments: files });
    expect(sock().ofType('send')[0]).toMatchObject({ clientId, body: '', attachments: ['a_1', 'a_2'] });
    sock().drop();
    await vi.advanceTimersByTimeAsync(0);
    sock().ready();
    const again = sock().ofType('send');
    expect(again).toMatchObject([{ clientId, attachments: ['a_1', 'a_2'] }]);
    sock().frame({ type: 'ack', id: again[0].id, message: msg(3, { senderId: 'u_1', clientId, body: '', attachments: files }) });
    expect(store.thread('c1').pending).toEqual([]);
    expect(store.conversations.value.c1.lastMessage?.attachments?.map((a) => a.id)).toEqual(['a_1', 'a_2']);
    // Deleted: the list's last message loses its files with its text.
    sock().frame({ type: 'message_deleted', conversationId: 'c1', messageId: msg(3).id, seq: 4, deletedBy: 'u_1', deletedAt: msg(4).createdAt, reason: 'deleted' });
    expect(store.thread('c1').messages.at(-1)?.attachments).toBeUndefined();
    expect(store.conversations.value.c1.lastMessage?.attachments).toBeUndefined();
  });

  it('keeps a message written while reconnecting and sends it by itself when the socket is back, however long the server was away', async () => {
    const { store, sock, sockets, fetchFn } = await setup();
    const impl = fetchFn.getMockImplementation()!;
    let down = true;
    fetchFn.mockImplementation(async (url: string, init?: RequestInit) => {
      if (down) throw new TypeError('Failed to fetch');
      return impl(url, init);
    });
    sock().drop();
    const waiting = store.send('c1', 'written during the blip');
    await vi.advanceTimersByTimeAsync(2500); // attempts at 0 and 1 s fail
    expect(store.thread('c1').pending[0]).toMatchObject({ clientId: waiting, status: 'pending' });
    down = false;
    await vi.advanceTimersByTimeAsync(1000); // the attempt at 3 s works
    sock().ready();
    const sent = sock().ofType('send');
    expect(sent.map((f) => f.clientId)).toEqual([waiting]);
    sock().frame({ type: 'ack', id: sent[0].id, message: msg(3, { senderId: 'u_1', clientId: waiting }) });
    expect(store.thread('c1').pending).toEqual([]);

    // Now the server goes away for ten minutes: the page keeps trying and the message waits.
    down = true;
    sock().drop();
    const later = store.send('c1', 'written while the server is away');
    await vi.advanceTimersByTimeAsync(10 * 60_000);
    expect(store.conn.value).toBe('reconnecting');
    expect(store.thread('c1').pending[0]).toMatchObject({ clientId: later, status: 'pending' });
    expect(store.connFailures.value).toBeGreaterThan(20);
    const calls = fetchFn.mock.calls.length;
    await vi.advanceTimersByTimeAsync(30_000);
    expect(fetchFn.mock.calls.length, 'still trying, every 30 s').toBeGreaterThan(calls);
    // Back: no click, the socket opens and the message goes out with its clientId.
    down = false;
    await vi.advanceTimersByTimeAsync(30_000);
    expect(sockets.length).toBe(3);
    sock().ready();
    expect(store.conn.value).toBe('open');
    expect(store.connFailures.value).toBe(0);
    const again = sock().ofType('send');
    expect(again.map((f) => f.clientId)).toEqual([later]);
    sock().frame({ type: 'ack', id: again[0].id, message: msg(4, { senderId: 'u_1', clientId: later }) });
    expect(store.thread('c1').pending).toEqual([]);
  });

  it('the browser coming back online (or the tab becoming visible) makes it try at once', async () => {
    const { store, sock, sockets, fetchFn } = await setup();
    const impl = fetchFn.getMockImplementation()!;
    let down = true;
    fetchFn.mockImplementation(async (url: string, init?: RequestInit) => {
      if (down) throw new TypeError('Failed to fetch');
      return impl(url, init);
    });
    sock().drop();
    await vi.advanceTimersByTimeAsync(120_000); // the next attempt is now up to 30 s away
    expect(store.conn.value).toBe('reconnecting');
    down = false;
    store.online();
    await vi.advanceTimersByTimeAsync(0);
    expect(sockets.length).toBe(2);
    sock().ready();
    expect(store.conn.value).toBe('open');
  });

  it('a message that failed for want of an answer goes out again by itself on the next socket', async () => {
    const { store, sock } = await setup();
    const clientId = store.send('c1', 'into the void');
    await vi.advanceTimersByTimeAsync(15_001);
    expect(store.thread('c1').pending[0]).toMatchObject({ clientId, status: 'failed' });
    sock().drop();
    await vi.advanceTimersByTimeAsync(0);
    sock().ready();
    const sent = sock().ofType('send');
    expect(sent.map((f) => f.clientId)).toEqual([clientId]);
    expect(store.thread('c1').pending[0]).toMatchObject({ clientId, status: 'pending' });
  });

  it('marks a message failed when no ack comes in time', async () => {
    const { store } = await setup();
    store.send('c1', 'anyone?');
    await vi.advanceTimersByTimeAsync(15_001);
    expect(store.thread('c1').pending[0]).toMatchObject({ status: 'failed' });
    expect(store.thread('c1').pending[0].error).toMatch(/did not answer/);
  });

  it('sends through REST while the socket is down, idempotent by clientId', async () => {
    const posts: unknown[] = [];
    const { store, sock } = await setup((url, body) => {
      if (url.endsWith('/read')) return json(200, { readSeq: (body as { seq: number }).seq });
      posts.push(body);
      return json(201, msg(3, { senderId: 'u_1', clientId: (body as { clientId: string }).clientId, body: 'offline' }));
    });
    sock().drop();
    expect(store.conn.value).toBe('reconnecting');
    store.send('c1', 'offline');
    await vi.advanceTimersByTimeAsync(0);
    expect(posts.length).toBe(1);
    expect(store.thread('c1').pending).toEqual([]);
    expect(store.thread('c1').messages.map((m) => m.seq)).toEqual([1, 2, 3]);
  });

  it('after a reconnect, syncs from its cursors and merges with no gap or duplicate', async () => {
    const { store, sock, sockets } = await setup();
    sock().frame({ type: 'message', message: msg(3) });
    expect(store.cursors.c1).toBe(3);
    sock().drop();
    await vi.advanceTimersByTimeAsync(0); // immediate reconnect
    expect(sockets.length).toBe(2);
    sock().ready();
    const sync = sock().ofType('sync')[0];
    expect(sync.cursors).toEqual({ c1: 3 });
    // The server answers what was missed, and a live copy of 5 also arrives.
    sock().frame({ type: 'message', message: msg(4) });
    sock().frame({ type: 'message', message: msg(5) });
    sock().frame({ type: 'message', message: msg(5) });
    sock().frame({ type: 'synced', cursors: { c1: 5 } });
    expect(store.thread('c1').messages.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(store.cursors.c1).toBe(5);
  });

  it('at page load, an unreachable server is not taken for a signed-out person', async () => {
    let up = false;
    const api = new ApiClient(async (url) => {
      if (!up) throw new TypeError('Failed to fetch');
      if (url.endsWith('/auth/refresh')) return json(200, session(jwt(900)));
      if (url.endsWith('/conversations')) return json(200, { conversations: [] });
      return json(200, { ticket: 't' });
    });
    const store = new ChatStore({ api, createSocket: () => new FakeSocket(), storage: signedInBefore() });
    await store.restore();
    expect(store.auth.value).toBe('unreachable');
    expect(store.notice.value).toMatch(/Can't reach Parley/);
    up = true;
    await store.restore();
    expect(store.auth.value).toBe('signedIn');
    expect(store.notice.value).toBeNull();
  });

  it('answers a resync frame with a sync from its cursors', async () => {
    const { store, sock } = await setup();
    sock().frame({ type: 'message', message: msg(3) });
    const before = sock().ofType('sync').length;
    sock().frame({ type: 'resync' });
    const syncs = sock().ofType('sync');
    expect(syncs.length).toBe(before + 1);
    expect(syncs.at(-1)).toEqual({ type: 'sync', cursors: { c1: 3 } });
    expect(store.conn.value).toBe('open');
  });

  it('answers a resync naming a conversation with a sync of that conversation only', async () => {
    const { sock } = await setup();
    sock().frame({ type: 'message', message: msg(3) });
    sock().frame({ type: 'resync', conversationId: 'c1' });
    expect(sock().ofType('sync').at(-1)).toEqual({ type: 'sync', cursors: { c1: 3 } });
    sock().frame({ type: 'resync', conversationId: 'c9' });
    expect(sock().ofType('sync').at(-1)).toEqual({ type: 'sync', cursors: { c9: 0 } });
  });

  it('syncs a conversation it learns of from its lastSeq', async () => {
    const { store, sock } = await setup();
    const c = { ...store.conversations.value.c1, id: 'c7', lastSeq: 4 };
    sock().frame({ type: 'conversation', conversation: c });
    expect(store.cursors.c7).toBe(4);
    expect(sock().ofType('sync').at(-1)).toEqual({ type: 'sync', cursors: { c7: 4 } });
  });

  it('asks for the missing part when a live message skips a seq', async () => {
    const { store, sock } = await setup();
    sock().frame({ type: 'message', message: msg(5) });
    expect(store.cursors.c1).toBe(2);
    expect(sock().ofType('sync').at(-1)).toEqual({ type: 'sync', cursors: { c1: 2 } });
  });

  it('extends the socket session with each refreshed token', async () => {
    const { store, sock } = await setup();
    await store.api.refresh();
    const auth = sock().ofType('auth');
    expect(auth.length).toBe(1);
    expect(auth[0].token).toBe(store.api.accessToken);
  });

  it('shows typing for a while, and a "seen" receipt from a read frame', async () => {
    const { store, sock } = await setup();
    sock().frame({ type: 'typing', conversationId: 'c1', userId: 'u_2' });
    expect(Object.keys(store.typing.value.c1)).toEqual(['u_2']);
    await vi.advanceTimersByTimeAsync(6000);
    expect(store.typing.value.c1).toBeUndefined();
    store.send('c1', 'did you see?');
    const f = sock().ofType('send')[0];
    sock().frame({ type: 'ack', id: f.id, message: msg(3, { senderId: 'u_1', clientId: f.clientId as string }) });
    expect(store.seenBy('c1', 3)).toEqual([]);
    sock().frame({ type: 'read', conversationId: 'c1', userId: 'u_2', seq: 3 });
    expect(store.seenBy('c1', 3)).toEqual(['u_2']);
  });

  it('counts unread messages of a conversation that is not open, and clears them when opened', async () => {
    const { store, sock } = await setup();
    await store.open(null);
    sock().frame({ type: 'message', message: msg(3) });
    sock().frame({ type: 'message', message: msg(4) });
    expect(store.conversations.value.c1.unread).toBe(2);
    await store.open('c1');
    expect(store.conversations.value.c1.unread).toBe(0);
    expect(sock().ofType('read').at(-1)).toEqual({ type: 'read', conversationId: 'c1', seq: 4 });
  });
});
