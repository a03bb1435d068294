import { describe, expect, it, vi } from 'vitest';
import { ApiClient } from '../src/api';
import { MemoryStorage } from '../src/persist';
import { SESSION_KEY, SessionSync, type ChannelLike, type SessionMessage, type StorageEvents } from '../src/session';
import { ChatStore } from '../src/store';
import type { Conversation } from '../src/types';
import { errorBody, FakeSocket, json, jwt, session } from './helpers';

/** BroadcastChannel between the "tabs" of one test: a post reaches every other member. */
class Hub {
  members: FakeChannel[] = [];
  channel(): FakeChannel {
    const c = new FakeChannel(this);
    this.members.push(c);
    return c;
  }
}
class FakeChannel implements ChannelLike {
  onmessage: ChannelLike['onmessage'] = null;
  constructor(private hub: Hub) {}
  postMessage(m: unknown) {
    for (const c of this.hub.members) if (c !== this) c.onmessage?.({ data: structuredClone(m) });
  }
  close() {}
}

const conv: Conversation = {
  id: 'c1',
  kind: 'direct',
  members: [
    { id: 'u_1', username: 'alice', displayName: 'Alice', role: 'member' },
    { id: 'u_2', username: 'bob', displayName: 'Bob', role: 'member' },
  ],
  lastSeq: 0,
  readSeq: 0,
  unread: 0,
  lastMessage: null,
  lastActivity: '2026-01-01T00:00:00Z',
  createdAt: '2026-01-01T00:00:00Z',
};

describe('SessionSync', () => {
  it('remembers that this browser may be signed in, and forgets it on sign-out', () => {
    const storage = new MemoryStorage();
    const s = new SessionSync(storage, null, null);
    expect(s.maybeSignedIn()).toBe(false);
    s.hold('u_1');
    expect(storage.getItem(SESSION_KEY)).toBe('u_1');
    expect(s.maybeSignedIn()).toBe(true);
    s.signedOut(false);
    expect(s.maybeSignedIn()).toBe(false);
  });

  it('without BroadcastChannel, hears other tabs through the storage event', () => {
    let listener: Parameters<StorageEvents['addEventListener']>[1] = () => {};
    const s = new SessionSync(new MemoryStorage(), null, { addEventListener: (_t, f) => (listener = f) });
    const got: SessionMessage[] = [];
    s.onMessage = (m) => got.push(m);
    listener({ key: 'something-else', newValue: null });
    listener({ key: SESSION_KEY, newValue: 'u_1' });
    listener({ key: SESSION_KEY, newValue: null });
    expect(got).toEqual([{ type: 'signed-in', userId: 'u_1' }, { type: 'signed-out', expired: false }]);
  });

  it('ignores messages that are not its own', () => {
    const hub = new Hub();
    const a = new SessionSync(new MemoryStorage(), hub.channel(), null);
    const got: SessionMessage[] = [];
    a.onMessage = (m) => got.push(m);
    const other = hub.channel();
    other.postMessage({ type: 'signed-in' });
    other.postMessage('signed-out');
    other.postMessage({ type: 'signed-out', expired: 'yes' });
    expect(got).toEqual([{ type: 'signed-out', expired: false }]);
  });
});

describe('tabs of one browser', () => {
  function tab(storage: MemoryStorage, hub: Hub, refresh: () => Response) {
    const fetchFn = vi.fn(async (url: string) => {
      if (url.endsWith('/auth/refresh')) return refresh();
      if (url.endsWith('/auth/login')) return json(200, session(jwt(900)));
      if (url.endsWith('/auth/logout')) return json(204, undefined);
      if (url.endsWith('/conversations')) return json(200, { conversations: [conv] });
      if (url.endsWith('/ws/ticket')) return json(200, { ticket: 't' });
      return json(404, errorBody('not_found'));
    });
    const store = new ChatStore({ api: new ApiClient(fetchFn), createSocket: () => new FakeSocket(), storage, session: new SessionSync(storage, hub.channel(), null) });
    return { store, fetchFn };
  }

  it('a first visit does not ask the server for a session it cannot have', async () => {
    const { store, fetchFn } = tab(new MemoryStorage(), new Hub(), () => json(401, errorBody('unauthorized')));
    await store.restore();
    expect(store.auth.value).toBe('signedOut');
    expect(fetchFn).not.toHaveBeenCalled();
  });

  it("a sign-in in another tab is followed even before this tab's storage shows its note", async () => {
    // Two renderer processes: the note written by one reaches the other's localStorage
    // later than the BroadcastChannel message can (seen in Chromium under load).
    const hub = new Hub();
    const refresh = () => json(200, session(jwt(900)));
    const t1 = tab(new MemoryStorage(), hub, refresh);
    const t2 = tab(new MemoryStorage(), hub, refresh);
    for (const t of [t1, t2]) await t.store.restore();
    await t1.store.login('alice', 'pw');
    await vi.waitFor(() => expect(t2.store.auth.value).toBe('signedIn'));
    expect(t2.fetchFn.mock.calls.some(([url]) => String(url).endsWith('/auth/refresh'))).toBe(true);
  });

  it('signing out in one tab signs out the others; the session ending in one ends it in all', async () => {
    const storage = new MemoryStorage();
    const hub = new Hub();
    let refused = false;
    const refresh = () => (refused ? json(401, errorBody('invalid_refresh_token')) : json(200, session(jwt(900))));
    const t1 = tab(storage, hub, refresh);
    const t2 = tab(storage, hub, refresh);
    const t3 = tab(storage, hub, refresh);
    // Three tabs open on the sign-in screen (nothing to restore yet).
    for (const t of [t1, t2, t3]) await t.store.restore();
    expect(t1.fetchFn).not.toHaveBeenCalled();
    await t1.store.login('alice', 'pw');
    // A sign-in in one tab is restored in the others (from the shared cookie).
    await vi.waitFor(() => expect([t2.store.auth.value, t3.store.auth.value]).toEqual(['signedIn', 'signedIn']));
    await t1.store.logout();
    expect(t1.store.auth.value).toBe('signedOut');
    expect(t2.store.auth.value).toBe('signedOut');
    expect(t3.store.auth.value).toBe('signedOut');
    expect(t2.store.sessionEnded.value).toBe(false);
    expect(storage.getItem(SESSION_KEY)).toBeNull();

    // Signed in again; then the server refuses one tab's refresh (signed out everywhere
    // from another device): every tab says the session ended.
    await t2.store.login('alice', 'pw');
    await vi.waitFor(() => expect(t3.store.auth.value).toBe('signedIn'));
    refused = true;
    await t3.store.api.refresh().catch(() => {});
    for (const t of [t1, t2, t3]) {
      expect(t.store.auth.value).toBe('signedOut');
      expect(t.store.sessionEnded.value).toBe(true);
    }
  });
});
