import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ApiClient } from '../src/api';
import { MemoryStorage } from '../src/persist';
import { SESSION_KEY } from '../src/session';
import { ChatStore } from '../src/store';
import type { Conversation, Message } from '../src/types';
import { errorBody, FakeSocket, json, jwt, msg, session } from './helpers';

// The store's part in notifications: the visibility frame, new messages handed to the
// notifier (only new ones, after they are counted), mute and settings through the API, the
// subscription dropped before signing out.

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

describe('ChatStore and notifications', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  async function setup() {
    const sockets: FakeSocket[] = [];
    let visible = true;
    const calls: Array<{ method: string; url: string; body: unknown }> = [];
    const fetchFn = vi.fn(async (url: string, init?: RequestInit) => {
      const body = init?.body ? JSON.parse(String(init.body)) : undefined;
      calls.push({ method: init?.method ?? 'GET', url, body });
      if (url.endsWith('/auth/refresh')) return json(200, session(jwt(900)));
      if (url.endsWith('/auth/logout')) return new Response(null, { status: 204 });
      if (url.endsWith('/conversations')) return json(200, { conversations: [conv()] });
      if (url.endsWith('/ws/ticket')) return json(200, { ticket: 'tk', expiresAt: '' });
      if (url.endsWith('/me/notifications') && init?.method === 'PATCH') return json(200, { pushPreview: true, mentionsBreakMute: true, dndUntil: null });
      if (url.endsWith('/me/notifications')) return json(200, { pushPreview: false, mentionsBreakMute: true, dndUntil: null });
      if (url.endsWith('/c1/notifications')) return json(200, { mutedUntil: body.mute === 'off' ? null : '2026-12-03T11:00:00Z' });
      return json(404, errorBody('not_found'));
    });
    const storage = new MemoryStorage();
    storage.setItem(SESSION_KEY, 'u_1');
    const store = new ChatStore({
      api: new ApiClient(fetchFn),
      createSocket: () => {
        const s = new FakeSocket();
        sockets.push(s);
        return s;
      },
      visible: () => visible,
      storage,
      random: () => 0.5,
    });
    const incoming: Array<{ m: Message; c: Conversation }> = [];
    store.onIncoming = (m, c) => incoming.push({ m, c });
    await store.restore();
    await vi.advanceTimersByTimeAsync(0);
    sockets[0].ready();
    await vi.advanceTimersByTimeAsync(0);
    return { store, sock: () => sockets[sockets.length - 1], calls, incoming, setVisible: (v: boolean) => (visible = v) };
  }

  it('sends the visibility frame when the socket is ready and on every change', async () => {
    const { store, sock, setVisible } = await setup();
    expect(sock().ofType('visibility')).toEqual([{ type: 'visibility', visible: true }]);
    // Before the sync: the server knows at once whether to push.
    expect(sock().sent.findIndex((f) => f.type === 'visibility')).toBeLessThan(sock().sent.findIndex((f) => f.type === 'sync'));
    setVisible(false);
    store.sendVisibility();
    expect(sock().ofType('visibility').at(-1)).toEqual({ type: 'visibility', visible: false });
  });

  it('hands new messages to the notifier, counted, once; not echoes of what it holds', async () => {
    const { sock, incoming, store } = await setup();
    expect(store.notifySettings.value).toEqual({ pushPreview: false, mentionsBreakMute: true, dndUntil: null });
    sock().frame({ type: 'message', message: msg(3, { mentions: ['u_1'] }) });
    expect(incoming).toHaveLength(1);
    expect(incoming[0].m.seq).toBe(3);
    expect(incoming[0].c.unread).toBe(1);
    expect(incoming[0].c.lastSeq).toBe(3);
    // The same message again (a sync after a reconnect) and an older one: nothing.
    sock().frame({ type: 'message', message: msg(3) });
    sock().frame({ type: 'message', message: msg(2) });
    expect(incoming).toHaveLength(1);
  });

  it('mutes through the API and keeps the answer on the conversation; unmute removes it', async () => {
    const { store, calls } = await setup();
    await store.setMute('c1', '1h');
    expect(calls.at(-1)).toMatchObject({ method: 'PUT', body: { mute: '1h' } });
    expect(store.conversations.value.c1.mutedUntil).toBe('2026-12-03T11:00:00Z');
    await store.setMute('c1', 'off');
    expect('mutedUntil' in store.conversations.value.c1).toBe(false);
  });

  it('changes settings through the API', async () => {
    const { store, calls } = await setup();
    await store.updateNotifySettings({ pushPreview: true });
    expect(calls.at(-1)).toMatchObject({ method: 'PATCH', body: { pushPreview: true } });
    expect(store.notifySettings.value?.pushPreview).toBe(true);
  });

  it('runs beforeSignOut while the session still works, then signs out; a failure there does not stop it', async () => {
    const { store, calls } = await setup();
    const order: string[] = [];
    store.beforeSignOut = async () => {
      order.push(`before, signed in: ${store.api.signedIn}`);
      throw new Error('push service away');
    };
    await store.logout();
    order.push(calls.at(-1)!.url);
    expect(order).toEqual(['before, signed in: true', '/api/v1/auth/logout']);
    expect(store.auth.value).toBe('signedOut');
    expect(store.notifySettings.value).toBeNull();
  });
});
