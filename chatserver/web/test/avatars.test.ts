import { afterEach, describe, expect, it, vi } from 'vitest';
import { ApiError, type ApiClient } from '../src/api';
import { cachedAvatar, clearAvatars, configureAvatars, loadAvatar } from '../src/avatars';

/** An ApiClient whose binary() answers from a table of paths, counting the requests. */
function fakeApi(answers: Record<string, Blob | ApiError>) {
  const calls: string[] = [];
  const api = {
    binary: async (_method: string, path: string) => {
      calls.push(path);
      const a = answers[path];
      if (!a || a instanceof ApiError) throw a ?? new ApiError(404, 'not_found', 'no');
      return new Response(a);
    },
  } as unknown as ApiClient;
  configureAvatars(api);
  return calls;
}

afterEach(() => {
  clearAvatars();
  vi.restoreAllMocks();
});

describe('avatars', () => {
  it('fetches a photo once per user and version, and revokes the old URL when the version changes', async () => {
    const calls = fakeApi({ '/users/u_1/avatar?v=v1': new Blob(['one']), '/users/u_1/avatar?v=v2': new Blob(['two']) });
    const revoke = vi.spyOn(URL, 'revokeObjectURL');
    expect(cachedAvatar('u_1', 'v1')).toBeNull();
    const [a, b] = await Promise.all([loadAvatar('u_1', 'v1'), loadAvatar('u_1', 'v1')]);
    expect(a).toMatch(/^blob:/);
    expect(b).toBe(a);
    expect(cachedAvatar('u_1', 'v1')).toBe(a);
    expect(calls).toEqual(['/users/u_1/avatar?v=v1']);
    const next = await loadAvatar('u_1', 'v2');
    expect(next).toMatch(/^blob:/);
    expect(next).not.toBe(a);
    expect(revoke).toHaveBeenCalledWith(a);
    expect(cachedAvatar('u_1', 'v1')).toBeNull();
    expect(await (await fetch(next!)).text()).toBe('two');
  });

  it('a photo that fails to load is null (initials) and not asked for again at that version', async () => {
    const calls = fakeApi({});
    expect(await loadAvatar('u_2', 'v1')).toBeNull();
    expect(await loadAvatar('u_2', 'v1')).toBeNull();
    expect(calls.length).toBe(1);
    expect(cachedAvatar('u_2', undefined)).toBeNull();
  });

  it('sign out forgets and revokes every photo', async () => {
    fakeApi({ '/users/u_3/avatar?v=a': new Blob(['x']) });
    const revoke = vi.spyOn(URL, 'revokeObjectURL');
    const url = await loadAvatar('u_3', 'a');
    clearAvatars();
    expect(revoke).toHaveBeenCalledWith(url);
    expect(cachedAvatar('u_3', 'a')).toBeNull();
  });
});
