import type { Conversation, Session } from './types';

/**
 * An error answered by the server (docs/api.md "Errors"), or a network failure (status 0).
 * `field` names the request field at fault when the server says (`error.field`), so a form
 * can put the error on that field.
 */
export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
    public retryAfter?: number,
    public field?: string,
    /** stale_epoch (encrypted conversations): the conversation's current MLS epoch. */
    public epoch?: number,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export type FetchFn = (input: string, init?: RequestInit) => Promise<Response>;

const SESSION_ENDED = new Set(['unauthorized', 'invalid_refresh_token', 'token_reused']);

/**
 * REST client. Keeps the access token in memory only; the refresh token lives in the
 * HttpOnly cookie. When requests meet an expired token, exactly one refresh runs and
 * every waiting request retries once with the new token. A refresh the server refuses
 * signs the person out once; a refresh that cannot reach the server keeps the session.
 */
export class ApiClient {
  private token: string | null = null;
  private refreshing: Promise<Session> | null = null;
  /** Called with every new session (sign-in, register, refresh). */
  onSession: (s: Session) => void = () => {};
  /** Called once when the server refuses the refresh token. */
  onSignedOut: (reason: ApiError) => void = () => {};
  refreshCount = 0;

  constructor(
    private fetchFn: FetchFn = (input, init) => fetch(input, init),
    private base = '/api/v1',
  ) {}

  get accessToken(): string | null {
    return this.token;
  }

  get signedIn(): boolean {
    return this.token !== null;
  }

  /** Forget the session locally (no request). */
  clear(): void {
    this.token = null;
  }

  async register(username: string, email: string, password: string, displayName: string): Promise<Session> {
    const s = await this.call<Session>('POST', '/auth/register', { username, email, password, displayName, session: 'cookie' }, false);
    this.adopt(s);
    return s;
  }

  async login(login: string, password: string): Promise<Session> {
    const s = await this.call<Session>('POST', '/auth/login', { login, password, session: 'cookie' }, false);
    this.adopt(s);
    return s;
  }

  /** Revokes this login (cookie) and forgets the token. Never throws. */
  async logout(): Promise<void> {
    this.token = null;
    try {
      await this.call('POST', '/auth/logout', {}, false);
    } catch {
      /* the cookie may already be revoked; nothing more to do */
    }
  }

  /** Changes the password; the server ends every other session and returns a new one. */
  async changePassword(currentPassword: string, newPassword: string): Promise<Session> {
    const s = await this.request<Session>('POST', '/auth/password', { currentPassword, newPassword, session: 'cookie' });
    this.adopt(s);
    return s;
  }

  /** Revokes every session of the user, then this one's cookie. */
  async logoutAll(): Promise<void> {
    await this.request('POST', '/auth/logout-all');
    await this.logout();
  }

  /**
   * Exchanges the refresh cookie for a new session. Concurrent callers share one
   * request. Rejects with ApiError; when the server refused the token (401) the
   * session is over and onSignedOut has been called (once, only if one was open).
   */
  refresh(): Promise<Session> {
    if (!this.refreshing) {
      this.refreshCount++;
      const wasSignedIn = this.token !== null;
      this.refreshing = (async () => {
        try {
          // Refresh tokens are single use and shared by every tab through the cookie: two
          // tabs refreshing at once would present the same token twice (and the server
          // would revoke the whole login). A Web Lock makes the tabs take turns.
          const s = await withLock('parley-refresh', () => this.call<Session>('POST', '/auth/refresh', {}, false));
          this.adopt(s);
          return s;
        } catch (e) {
          const err = toApiError(e);
          if (err.status === 401 || SESSION_ENDED.has(err.code)) {
            this.token = null;
            if (wasSignedIn) this.onSignedOut(err);
          }
          throw err;
        } finally {
          this.refreshing = null;
        }
      })();
    }
    return this.refreshing;
  }

  /**
   * An authenticated request. On 401 it refreshes (or joins the refresh already under
   * way) and retries once. Without a session it fails at once and never refreshes, so
   * a signed-out page cannot loop.
   */
  async request<T = unknown>(method: string, path: string, body?: unknown, meta?: { status?: number }): Promise<T> {
    if (this.token === null && this.refreshing) await this.refreshing.catch(() => {});
    const used = this.token;
    if (used === null) throw new ApiError(401, 'unauthorized', 'not signed in');
    try {
      return await this.call<T>(method, path, body, true, meta);
    } catch (e) {
      // Only an expired or revoked token is worth a refresh; other 401s (a wrong
      // current password) are answers.
      if (!(e instanceof ApiError) || e.status !== 401 || e.code !== 'unauthorized') throw e;
      if (this.token === used) {
        // Nobody refreshed since we sent the request: refresh (shared by all callers).
        await this.refresh();
      } else if (this.refreshing) {
        await this.refreshing;
      }
      if (this.token === null) throw e;
      return this.call<T>(method, path, body, true, meta);
    }
  }

  /**
   * An authenticated request whose body is raw bytes (a File or Blob, sent as it is)
   * or whose answer is binary: the Response is returned when it is ok, errors are
   * ApiErrors as from request(). On 401 it refreshes once, as request() does.
   */
  async binary(method: string, path: string, body?: Blob): Promise<Response> {
    const send = async (): Promise<Response> => {
      const headers: Record<string, string> = {};
      if (this.token) headers.Authorization = `Bearer ${this.token}`;
      let res: Response;
      try {
        res = await this.fetchFn(this.base + path, { method, headers, body, credentials: 'same-origin' });
      } catch (e) {
        throw new ApiError(0, 'network', e instanceof Error ? e.message : String(e));
      }
      if (res.ok) return res;
      const text = await res.text().catch(() => '');
      let data: unknown = null;
      try {
        data = text ? JSON.parse(text) : null;
      } catch {
        data = null;
      }
      throw errorFromAnswer(res, data);
    };
    const used = this.token;
    if (used === null) throw new ApiError(401, 'unauthorized', 'not signed in');
    try {
      return await send();
    } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 401 || e.code !== 'unauthorized') throw e;
      if (this.token === used) await this.refresh();
      else if (this.refreshing) await this.refreshing;
      if (this.token === null) throw e;
      return send();
    }
  }

  private adopt(s: Session): void {
    this.token = s.accessToken;
    this.onSession(s);
  }

  /** `meta.status`: the answer's HTTP status (201 created, 200 already there). */
  private async call<T>(method: string, path: string, body: unknown, auth: boolean, meta?: { status?: number }): Promise<T> {
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (auth && this.token) headers.Authorization = `Bearer ${this.token}`;
    let res: Response;
    try {
      res = await this.fetchFn(this.base + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: 'same-origin',
      });
    } catch (e) {
      throw new ApiError(0, 'network', e instanceof Error ? e.message : String(e));
    }
    if (meta) meta.status = res.status;
    if (res.status === 204) return undefined as T;
    let data: unknown = null;
    const text = await res.text().catch(() => '');
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    if (!res.ok) throw errorFromAnswer(res, data);
    return data as T;
  }
}

/** The ApiError of a failed answer whose body (JSON, or null) is data. */
function errorFromAnswer(res: Response, data: unknown): ApiError {
  const err = (data as { error?: { code?: string; message?: string; retryAfter?: number; field?: unknown; epoch?: unknown }; retryAfter?: number } | null) ?? {};
  const code = err.error?.code ?? (res.status >= 500 ? 'internal' : 'http_' + res.status);
  const retryHeader = Number(res.headers.get('Retry-After'));
  const retryAfter = err.error?.retryAfter ?? err.retryAfter ?? (Number.isFinite(retryHeader) && retryHeader > 0 ? retryHeader : undefined);
  const field = typeof err.error?.field === 'string' && /^[A-Za-z]{1,32}$/.test(err.error.field) ? err.error.field : undefined;
  const epoch = typeof err.error?.epoch === 'number' ? err.error.epoch : undefined;
  return new ApiError(res.status, code, err.error?.message ?? res.statusText, retryAfter, field, epoch);
}

/** Runs f under the Web Lock `name` (one at a time across this browser's tabs), or at once without Web Locks. */
export function withLock<T>(name: string, f: () => Promise<T>): Promise<T> {
  const locks = typeof navigator !== 'undefined' ? (navigator as Navigator & { locks?: LockManager }).locks : undefined;
  if (!locks) return f();
  return locks.request(name, f) as Promise<T>;
}

export function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  return new ApiError(0, 'network', e instanceof Error ? e.message : String(e));
}

/** Seconds of lifetime of a JWT (exp - iat), or null when it cannot be read. */
export function tokenLifetime(token: string): number | null {
  const part = token.split('.')[1];
  if (!part) return null;
  try {
    const json = atob(part.replace(/-/g, '+').replace(/_/g, '/'));
    const claims = JSON.parse(json) as { exp?: number; iat?: number; nbf?: number };
    const start = claims.iat ?? claims.nbf;
    if (typeof claims.exp !== 'number' || typeof start !== 'number') return null;
    return claims.exp - start;
  } catch {
    return null;
  }
}

/**
 * Milliseconds from now until the access token should be refreshed: two thirds of its
 * lifetime, at most one minute before it ends. Uses the token's own lifetime so a wrong
 * browser clock does not matter.
 */
export function refreshDelay(s: Session, now = Date.now()): number {
  let life = tokenLifetime(s.accessToken);
  if (life === null || life <= 0) life = (Date.parse(s.accessTokenExpiresAt) - now) / 1000;
  if (!Number.isFinite(life) || life <= 0) return 1000;
  const ms = life * 1000;
  return Math.max(1000, Math.max(ms * (2 / 3), ms - 60_000));
}

/**
 * Renames a group (owner or admin): `PATCH /conversations/{id}` with `{"title"}`, answered by
 * the conversation as it now is (the other members get a `conversation` frame).
 */
export function renameConversation(api: ApiClient, conversationId: string, title: string): Promise<Conversation> {
  return api.request<Conversation>('PATCH', `/conversations/${encodeURIComponent(conversationId)}`, { title });
}
