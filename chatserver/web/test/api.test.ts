import { describe, expect, it, vi } from 'vitest';
import { ApiClient, ApiError, refreshDelay } from '../src/api';
import { describeError, errorField } from '../src/errors';
import { deferred, errorBody, json, jwt, session } from './helpers';

type Call = { url: string; method: string; auth: string | null };

/** A fake server: /things answers 200 only with the current valid token. */
function fakeServer() {
  const calls: Call[] = [];
  let valid = 'T0';
  const gate = deferred<void>();
  let refreshResult: () => Response = () => {
    valid = 'T' + (Number(valid.slice(1)) + 1);
    return json(200, session(valid));
  };
  const fetchFn = vi.fn(async (url: string, init?: RequestInit) => {
    const headers = (init?.headers ?? {}) as Record<string, string>;
    const call = { url, method: init?.method ?? 'GET', auth: headers.Authorization ?? null };
    calls.push(call);
    if (url.endsWith('/auth/refresh')) {
      await gate.promise; // hold the refresh so every request meets the old token first
      return refreshResult();
    }
    if (url.endsWith('/things')) {
      return call.auth === `Bearer ${valid}` ? json(200, { ok: call.auth }) : json(401, errorBody('unauthorized'));
    }
    return json(404, errorBody('not_found'));
  });
  return {
    fetchFn,
    calls,
    gate,
    expire: () => (valid = 'T' + (Number(valid.slice(1)) + 100)),
    setRefresh: (f: () => Response) => (refreshResult = f),
    valid: () => valid,
  };
}

async function signedInClient(srv: ReturnType<typeof fakeServer>) {
  const api = new ApiClient(srv.fetchFn);
  // Sign in through a first refresh (what a page load does with its cookie).
  srv.gate.resolve();
  srv.setRefresh(() => json(200, session('T0')));
  await api.refresh();
  return api;
}

describe('silent refresh', () => {
  it('does not refresh for a 401 that is an answer (a wrong current password)', async () => {
    const srv = fakeServer();
    const api = await signedInClient(srv);
    const before = api.refreshCount;
    srv.fetchFn.mockImplementationOnce(async () => json(401, errorBody('invalid_credentials')));
    await expect(api.changePassword('wrong', 'a brand new passphrase')).rejects.toMatchObject({ code: 'invalid_credentials' });
    expect(api.refreshCount).toBe(before);
    expect(api.signedIn).toBe(true);
    expect(describeError(new ApiError(401, 'invalid_credentials', ''), 'password')).toBe('Your current password is not right. Please try again.');
  });

  it('runs one refresh for many concurrent 401s; the others wait for it and retry', async () => {
    const srv = fakeServer();
    const api = new ApiClient(srv.fetchFn);
    srv.setRefresh(() => json(200, session('T0')));
    const first = api.refresh();
    srv.gate.resolve();
    await first;
    expect(api.accessToken).toBe('T0');

    // The token expires; a slow refresh.
    srv.expire();
    const hold = deferred<void>();
    let refreshes = 0;
    srv.fetchFn.mockImplementation(async (url: string, init?: RequestInit) => {
      const auth = ((init?.headers ?? {}) as Record<string, string>).Authorization ?? null;
      srv.calls.push({ url, method: init?.method ?? 'GET', auth });
      if (url.endsWith('/auth/refresh')) {
        refreshes++;
        await hold.promise;
        return json(200, session(srv.valid()));
      }
      return auth === `Bearer ${srv.valid()}` ? json(200, { ok: true }) : json(401, errorBody('unauthorized'));
    });
    const seen: string[] = [];
    api.onSession = (s) => seen.push(s.accessToken);
    const reqs = Array.from({ length: 8 }, () => api.request<{ ok: boolean }>('GET', '/things'));
    // Let all eight meet the 401 before the refresh answers.
    await vi.waitFor(() => expect(srv.calls.filter((c) => c.url.endsWith('/things')).length).toBe(8));
    await new Promise((r) => setTimeout(r, 10));
    expect(refreshes).toBe(1);
    hold.resolve();
    const results = await Promise.all(reqs);
    expect(results.every((r) => r.ok)).toBe(true);
    expect(refreshes).toBe(1);
    expect(seen).toEqual([srv.valid()]);
    // Each request: once with the old token, once retried with the new one.
    const things = srv.calls.filter((c) => c.url.endsWith('/things'));
    expect(things.length).toBe(16);
    expect(things.filter((c) => c.auth === `Bearer ${srv.valid()}`).length).toBe(8);
  });

  it('does not refresh again for a 401 that answers a token already replaced', async () => {
    const srv = fakeServer();
    const api = await signedInClient(srv);
    srv.expire();
    srv.setRefresh(() => json(200, session(srv.valid())));
    const slow = deferred<void>();
    const orig = srv.fetchFn.getMockImplementation()!;
    let n = 0;
    srv.fetchFn.mockImplementation(async (url: string, init?: RequestInit) => {
      // The second /things request answers its 401 only after the first one's refresh finished.
      if (url.endsWith('/things') && ++n === 2) await slow.promise;
      return orig(url, init);
    });
    const a = api.request('GET', '/things');
    const b = api.request('GET', '/things');
    await a;
    slow.resolve();
    await b;
    expect(srv.calls.filter((c) => c.url.endsWith('/auth/refresh')).length).toBe(2); // sign-in + one
  });

  it('signs out exactly once when the refresh is refused, and never loops', async () => {
    const srv = fakeServer();
    const api = await signedInClient(srv);
    srv.expire();
    srv.setRefresh(() => json(401, errorBody('token_reused')));
    const signedOut = vi.fn();
    api.onSignedOut = signedOut;
    const results = await Promise.allSettled(Array.from({ length: 5 }, () => api.request('GET', '/things')));
    expect(results.every((r) => r.status === 'rejected')).toBe(true);
    for (const r of results) {
      const e = (r as PromiseRejectedResult).reason as ApiError;
      expect(e).toBeInstanceOf(ApiError);
      expect(e.status).toBe(401);
    }
    expect(signedOut).toHaveBeenCalledTimes(1);
    expect(api.signedIn).toBe(false);
    const refreshesBefore = srv.calls.filter((c) => c.url.endsWith('/auth/refresh')).length;
    expect(refreshesBefore).toBe(2); // sign-in + the one refused
    // Signed out: later requests fail at once, without a request and without a refresh.
    const callsBefore = srv.calls.length;
    await expect(api.request('GET', '/things')).rejects.toMatchObject({ code: 'unauthorized' });
    expect(srv.calls.length).toBe(callsBefore);
    expect(signedOut).toHaveBeenCalledTimes(1);
  });

  it('keeps the session when the refresh cannot reach the server', async () => {
    const srv = fakeServer();
    const api = await signedInClient(srv);
    srv.expire();
    srv.fetchFn.mockImplementation(async (url: string) => {
      if (url.endsWith('/auth/refresh')) throw new TypeError('Failed to fetch');
      return json(401, errorBody('unauthorized'));
    });
    const signedOut = vi.fn();
    api.onSignedOut = signedOut;
    await expect(api.request('GET', '/things')).rejects.toMatchObject({ code: 'network', status: 0 });
    expect(signedOut).not.toHaveBeenCalled();
    expect(api.signedIn).toBe(true);
  });

  it('takes the cross-tab Web Lock around each refresh', async () => {
    const order: string[] = [];
    const locks = {
      request: vi.fn(async (name: string, f: () => Promise<unknown>) => {
        order.push(`lock ${name}`);
        const r = await f();
        order.push('unlock');
        return r;
      }),
    };
    vi.stubGlobal('navigator', { locks });
    try {
      const api = new ApiClient(async (url) => {
        order.push(url);
        return json(200, session(jwt(900)));
      });
      await api.refresh();
      expect(order).toEqual(['lock parley-refresh', '/api/v1/auth/refresh', 'unlock']);
    } finally {
      vi.unstubAllGlobals();
    }
  });

  it('refreshes at two thirds of a short token life, and a minute early for long ones', () => {
    const now = Date.now();
    expect(refreshDelay(session(jwt(5)), now)).toBeCloseTo(3333, -1);
    expect(refreshDelay(session(jwt(900)), now)).toBe(840_000);
  });
});

describe('server errors in words', () => {
  it('turns codes into sentences', () => {
    expect(describeError(new ApiError(429, 'rate_limited', 'x', 7))).toMatch(/wait 7 seconds/);
    expect(describeError(new ApiError(413, 'message_too_long', 'x'), 'send')).toMatch(/too long.*4,000 characters/);
    expect(describeError(new ApiError(413, 'message_too_long', 'message is longer than 1000 characters'))).toMatch(/1,000 characters at most/);
    expect(describeError(new ApiError(413, 'message_too_long', 'message is 201 characters long; the limit is 200'))).toMatch(/\(200 characters at most/);
    expect(describeError(new ApiError(404, 'not_found', 'x'), 'send')).toMatch(/not a member/);
    expect(describeError(new ApiError(409, 'conflict', 'x'), 'register')).toMatch(/already taken/);
    expect(describeError(new ApiError(401, 'invalid_credentials', 'x'), 'login')).toMatch(/don't match/);
    expect(describeError(new ApiError(0, 'network', 'Failed to fetch'))).toMatch(/Can't reach/);
    expect(describeError({ code: 'rate_limited', message: 'slow down', retryAfter: 1 })).toMatch(/1 second and/);
  });

  it('reads code and retryAfter from the error body or Retry-After', async () => {
    const api = new ApiClient(async () => json(429, errorBody('rate_limited'), { 'Retry-After': '12' }));
    await expect(api.login('a', 'b')).rejects.toMatchObject({ status: 429, code: 'rate_limited', retryAfter: 12 });
  });
});

describe('errors naming a field', () => {
  it('carries the field the server names, and puts the words on it', async () => {
    const api = new ApiClient(async () => json(409, { error: { code: 'conflict', message: 'username taken', field: 'username' } }));
    const e = await api.register('alice', 'a@example.com', 'a long passphrase', 'Alice').catch((x) => x);
    expect(e).toBeInstanceOf(ApiError);
    expect(e).toMatchObject({ status: 409, code: 'conflict', field: 'username' });
    expect(errorField(e, 'register')).toBe('username');
    expect(describeError(e, 'register')).toBe('That username is taken. Please choose another.');
    const email = new ApiError(409, 'conflict', 'email taken', undefined, 'email');
    expect(describeError(email, 'register')).toMatch(/account with that email already exists/);
  });

  it('has no field when the server names none (or something that is not a field name)', async () => {
    for (const body of [{ error: { code: 'conflict', message: 'taken' } }, { error: { code: 'conflict', message: 'taken', field: '<img src=x>' } }, { error: { code: 'conflict', message: 'taken', field: 7 } }]) {
      const api = new ApiClient(async () => json(409, body));
      const e = await api.register('alice', 'a@example.com', 'a long passphrase', 'Alice').catch((x) => x);
      expect(e.field).toBeUndefined();
      expect(errorField(e, 'register')).toBeUndefined();
      expect(describeError(e, 'register')).toBe('That username or email is already taken.');
    }
  });

  it('knows the field of errors that can only be about one field of a form', () => {
    expect(errorField(new ApiError(400, 'weak_password', 'weak'), 'register')).toBe('password');
    expect(errorField(new ApiError(400, 'weak_password', 'weak'), 'password')).toBe('newPassword');
    expect(errorField(new ApiError(401, 'invalid_credentials', 'no'), 'password')).toBe('currentPassword');
    expect(errorField(new ApiError(401, 'invalid_credentials', 'no'), 'login')).toBeUndefined();
    expect(errorField(new ApiError(400, 'invalid_request', 'no', undefined, 'newPassword'), 'password')).toBe('newPassword');
  });
});
