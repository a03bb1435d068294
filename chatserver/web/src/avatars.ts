// Profile photos on the client (docs/api.md "Profile photo"): GET /users/{id}/avatar needs
// the access token, which an <img src> cannot send, so each photo is fetched through the
// API client and shown from an object URL. One URL per user, for the version the server
// last announced (the user's `avatar`); a new version replaces and revokes the old URL.
// A photo that fails to load is remembered as failed for that version (initials show).
import type { ApiClient } from './api';

interface Entry {
  version: string;
  /** The object URL once loaded; null while loading or when it failed. */
  url: string | null;
  promise: Promise<string | null>;
}

let api: ApiClient | null = null;
const entries = new Map<string, Entry>();

/** The client photos are fetched with (the store sets it). */
export function configureAvatars(client: ApiClient): void {
  api = client;
}

/** The object URL of a user's photo at version, if it is loaded already. */
export function cachedAvatar(userId: string, version: string | undefined): string | null {
  if (!version) return null;
  const e = entries.get(userId);
  return e && e.version === version ? e.url : null;
}

/**
 * The object URL of a user's photo at version (null: none, or it could not be loaded).
 * Concurrent callers share one request; an older version's URL is revoked.
 */
export function loadAvatar(userId: string, version: string): Promise<string | null> {
  const cur = entries.get(userId);
  if (cur && cur.version === version) return cur.promise;
  const client = api;
  if (!client) return Promise.resolve(null);
  const entry: Entry = { version, url: null, promise: Promise.resolve(null) };
  entry.promise = (async () => {
    try {
      const res = await client.binary('GET', `/users/${encodeURIComponent(userId)}/avatar?v=${encodeURIComponent(version)}`);
      const blob = await res.blob();
      if (entries.get(userId) !== entry) return null; // replaced meanwhile
      entry.url = URL.createObjectURL(blob);
      return entry.url;
    } catch {
      return null;
    }
  })();
  if (cur?.url) URL.revokeObjectURL(cur.url);
  entries.set(userId, entry);
  return entry.promise;
}

/** Forgets every photo and revokes their URLs (sign out). */
export function clearAvatars(): void {
  for (const e of entries.values()) if (e.url) URL.revokeObjectURL(e.url);
  entries.clear();
}

/** The profile photo limits the server applies (docs/api.md), checked before uploading. */
export const AVATAR_MAX_BYTES = 10 * 1024 * 1024;
export const AVATAR_TYPES = ['image/jpeg', 'image/png', 'image/gif', 'image/webp'];
