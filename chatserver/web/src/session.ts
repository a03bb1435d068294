import type { KeyValueStorage } from './persist';

/**
 * The tabs of one browser share one session (the HttpOnly refresh cookie), so they sign in
 * and out together (issue 12 defect 2). This keeps a non-secret note in localStorage that
 * this browser may be signed in (the id of the user, never a token): without it the page
 * does not ask the server to refresh at load, so a first visit does not meet a 401. And it
 * tells the other tabs when this one signs in or out, over a BroadcastChannel (or, where
 * there is none, through the storage event the note's change raises in the other tabs).
 */
export const SESSION_KEY = 'parley:v1:session';
const CHANNEL = 'parley-session';

export type SessionMessage = { type: 'signed-in'; userId: string } | { type: 'signed-out'; expired: boolean };

/** The part of BroadcastChannel used here. */
export interface ChannelLike {
  postMessage(m: unknown): void;
  onmessage: ((ev: { data: unknown }) => void) | null;
  close(): void;
}

/** Where the storage event of other tabs is heard (window in the browser). */
export interface StorageEvents {
  addEventListener(type: 'storage', f: (ev: { key: string | null; newValue: string | null; oldValue?: string | null }) => void): void;
}

export class SessionSync {
  /** Called with what another tab of this browser did. */
  onMessage: (m: SessionMessage) => void = () => {};
  private channel: ChannelLike | null;

  constructor(
    private readonly storage: KeyValueStorage,
    channel?: ChannelLike | null,
    events?: StorageEvents | null,
  ) {
    this.channel = channel === undefined ? browserChannel() : channel;
    if (this.channel) {
      this.channel.onmessage = (ev) => {
        const m = parse(ev.data);
        if (m) this.onMessage(m);
      };
    } else {
      const ev: StorageEvents | null = events === undefined ? (typeof window !== 'undefined' ? (window as unknown as StorageEvents) : null) : events;
      // No BroadcastChannel: the note's change, as other tabs see it.
      ev?.addEventListener('storage', (e) => {
        if (e.key !== SESSION_KEY && e.key !== null) return;
        if (e.newValue) this.onMessage({ type: 'signed-in', userId: e.newValue });
        else this.onMessage({ type: 'signed-out', expired: false });
      });
    }
  }

  /** Whether this browser was signed in and has not signed out since (worth a refresh). */
  maybeSignedIn(): boolean {
    try {
      return !!this.storage.getItem(SESSION_KEY);
    } catch {
      // No storage to tell: ask the server.
      return true;
    }
  }

  /** A session is held (each new token): remembers it, silently. */
  hold(userId: string): void {
    try {
      if (this.storage.getItem(SESSION_KEY) !== userId) this.storage.setItem(SESSION_KEY, userId);
    } catch {
      /* storage disabled: every load asks the server */
    }
  }

  /** This tab signed in: the others follow (they restore the session from the cookie). */
  signedIn(userId: string): void {
    this.hold(userId);
    this.channel?.postMessage({ type: 'signed-in', userId } satisfies SessionMessage);
  }

  /** This tab signed out, or its session ended: the others end theirs too. */
  signedOut(expired: boolean): void {
    try {
      this.storage.removeItem(SESSION_KEY);
    } catch {
      /* ignore */
    }
    this.channel?.postMessage({ type: 'signed-out', expired } satisfies SessionMessage);
  }
}

function browserChannel(): ChannelLike | null {
  try {
    // In a page only (not under Node, whose BroadcastChannel would join unrelated stores).
    if (typeof window !== 'undefined' && typeof BroadcastChannel !== 'undefined') return new BroadcastChannel(CHANNEL) as unknown as ChannelLike;
  } catch {
    /* not allowed here */
  }
  return null;
}

function parse(d: unknown): SessionMessage | null {
  const m = d as Partial<SessionMessage> | null;
  if (!m || typeof m !== 'object') return null;
  if (m.type === 'signed-in' && typeof (m as { userId?: unknown }).userId === 'string') return { type: 'signed-in', userId: (m as { userId: string }).userId };
  if (m.type === 'signed-out') return { type: 'signed-out', expired: (m as { expired?: unknown }).expired === true };
  return null;
}
