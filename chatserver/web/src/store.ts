import { batch, computed, signal } from '@preact/signals';
import { ApiClient, ApiError, refreshDelay, toApiError } from './api';
import { addUploads, describeUploadError, removeUpload, uploadDone, uploadFailed, uploadFile, uploadProgress, UrlCache, type SignedUrls, type Upload, type UploadHandle } from './attachments';
import { clearAvatars, configureAvatars } from './avatars';
import { describeError } from './errors';
import type { E2ee, Host } from './e2ee/client';
import { idbKV, sealFile, type KV } from './e2ee/keystore';
import { sealedAttachment, toBase64, type Payload } from './e2ee/payload';
import type { NotifySettings } from './notify';
import { browserStorage, LocalState, type KeyValueStorage } from './persist';
import { SessionSync, type SessionMessage } from './session';
import { Connection, type ConnState, type SocketLike, type Timers } from './socket';
import {
  addPending,
  advanceOver,
  applyEvent,
  dropPending,
  excerpt,
  emptyThread,
  failPending,
  isPending,
  newClientId,
  receive,
  replaceMessage,
  retryPending,
  type Pending,
  type Thread,
} from './thread';
import type { Attachment, ChangeEvent, ClientFrame, Conversation, Message, ReplyRef, ServerFrame, Session, User } from './types';

export type AuthState = 'loading' | 'unreachable' | 'signedOut' | 'signedIn';

export interface StoreDeps {
  api?: ApiClient;
  createSocket?: (ticket: string) => SocketLike;
  timers?: Timers;
  now?: () => number;
  /** Whether the person can see the page (read receipts are sent only then). */
  visible?: () => boolean;
  ackTimeoutMs?: number;
  /** Where drafts and unsent messages survive a reload (localStorage by default). */
  storage?: KeyValueStorage;
  /** A random number in [0, 1) for the reconnect jitter (tests fix it). */
  random?: () => number;
  /** How the tabs of this browser sign in and out together (over `storage` by default). */
  session?: SessionSync;
  /**
   * Where end-to-end keys live (IndexedDB by default). Without IndexedDB (unit tests of
   * the rest of the store) this browser is not an MLS device and encrypted conversations
   * are shown as unreadable.
   */
  e2eeKV?: KV | null;
}

const E2EE_UNAVAILABLE = 'End-to-end encryption is not available in this browser.';

/** Delays between automatic attempts to reach the server at page load. */
const RESTORE_RETRY_MS = [2000, 5000, 10000, 30000];

const TYPING_SHOW_MS = 5000;
const TYPING_SEND_EVERY_MS = 2500;

function defaultSocket(ticket: string): SocketLike {
  const proto = location.protocol === 'https:' ? 'wss' : 'ws';
  const ws = new WebSocket(`${proto}://${location.host}/api/v1/ws?ticket=${encodeURIComponent(ticket)}`, ['parley.v1']);
  return ws as unknown as SocketLike;
}

/** All client state, as signals, and the actions that change it. UI-free so it can be unit-tested. */
export class ChatStore {
  readonly api: ApiClient;
  readonly auth = signal<AuthState>('loading');
  readonly me = signal<User | null>(null);
  readonly conversations = signal<Record<string, Conversation>>({});
  readonly threads = signal<Record<string, Thread>>({});
  /** conversationId -> userId -> until (ms) */
  readonly typing = signal<Record<string, Record<string, number>>>({});
  /** conversationId -> userId -> highest seq read (from `read` frames) */
  readonly receipts = signal<Record<string, Record<string, number>>>({});
  readonly activeId = signal<string | null>(null);
  readonly conn = signal<ConnState>('idle');
  /** Reconnect attempts that failed since the socket was last open (the banner says more after a few). */
  readonly connFailures = signal(0);
  /** A message for the person (an error in words), shown in a dismissable alert. */
  readonly notice = signal<string | null>(null);
  /** Whether the sign-in screen should say the session ended. */
  readonly sessionEnded = signal(false);
  /** Unsent text per conversation (kept in localStorage, per user). */
  readonly drafts = signal<Record<string, string>>({});
  /**
   * Where "New messages" goes: the read marker the open conversation had when it was
   * opened (or looked at again) with unread messages.
   */
  readonly readMark = signal<{ conversationId: string; seq: number } | null>(null);
  /**
   * Who reacted, as far as this page saw it: messageId -> emoji -> userIds, from `reaction`
   * frames (the message view has counts only).
   */
  readonly reactors = signal<Record<string, Record<string, string[]>>>({});
  /** My notification settings (GET /me/notifications); null until loaded or when unavailable. */
  readonly notifySettings = signal<NotifySettings | null>(null);
  /**
   * Called with each new message that arrives live (a `message` frame above what the list
   * held), after it was applied: the in-tab notifications (src/push.ts) decide on it.
   */
  onIncoming: ((m: Message, c: Conversation) => void) | null = null;
  /** Runs before signing out, while the session still works (the device's push subscription goes). */
  beforeSignOut: (() => Promise<void>) | null = null;
  /** This browser as an MLS device (null: not available here, or not started yet). */
  e2ee: E2ee | null = null;
  /** Why end-to-end encryption is unavailable on this device, when it is. */
  readonly e2eeError = signal<string | null>(null);
  private readonly e2eeKV: KV | null;
  /** socket request id -> an encrypted edit or reaction waiting for its ack */
  private inflightHidden = new Map<string, { conversationId: string; clientId: string; timer: unknown; done: (err?: unknown) => void }>();
  /** Files being uploaded or uploaded for the next message, per conversation (the composer's chips). */
  readonly uploads = signal<Record<string, Upload[]>>({});
  /** Signed URLs of attachments, for <img>, <audio>, <video> and links. */
  readonly urls: UrlCache;
  /** Upload key -> its request (to cancel it). */
  private uploading = new Map<string, UploadHandle>();

  readonly sortedConversations = computed(() =>
    Object.values(this.conversations.value).sort((a, b) => activity(b) - activity(a) || (a.id < b.id ? -1 : 1)),
  );

  /** Per conversation: highest seq with nothing missing before it. Sent in `sync`. */
  cursors: Record<string, number> = {};

  private connection: Connection;
  private readonly t: Timers;
  private readonly now: () => number;
  private readonly visible: () => boolean;
  private refreshTimer: unknown = null;
  private reqSeq = 0;
  /** Seqs seen above each cursor (a message or change event that came after a gap). */
  private seen: Record<string, Set<number>> = {};
  /** Change events applied per conversation (an answer older than one of them is not applied). */
  private changes: Record<string, number> = {};
  /** socket request id -> a send waiting for its ack */
  private inflight = new Map<string, { conversationId: string; clientId: string; timer: unknown }>();
  /** socket request id -> an edit, delete or reaction waiting for its ack */
  private inflightChange = new Map<string, { conversationId: string; timer: unknown; done: (m: Message | null, err?: unknown) => void }>();
  private lastTypingSent: Record<string, number> = {};
  private readSent: Record<string, number> = {};
  /**
   * The latest presence frame per user, numbered in arrival order: a conversation list
   * asked for before a frame arrived was computed before it, so its presence is older
   * and must not undo the frame (issue 12 defect 10).
   */
  private presenceSeen: Record<string, { n: number; online: boolean; lastSeen?: string }> = {};
  private presenceCount = 0;
  private typingTimer: unknown = null;
  private ackTimeoutMs: number;
  private readonly storage: KeyValueStorage;
  readonly session: SessionSync;
  private local: LocalState | null = null;
  private restoreTimer: unknown = null;
  private restoreAttempt = 0;
  /** Sends that failed for want of an answer (not refused): retried when a socket is ready. */
  private unanswered = new Set<string>();

  constructor(deps: StoreDeps = {}) {
    this.api = deps.api ?? new ApiClient();
    this.t = deps.timers ?? { setTimeout: (f, ms) => setTimeout(f, ms), clearTimeout: (h) => clearTimeout(h as number) };
    this.now = deps.now ?? (() => Date.now());
    this.visible = deps.visible ?? (() => typeof document === 'undefined' || document.visibilityState === 'visible');
    this.ackTimeoutMs = deps.ackTimeoutMs ?? 15_000;
    this.storage = deps.storage ?? browserStorage();
    this.session = deps.session ?? new SessionSync(this.storage);
    this.session.onMessage = (m) => this.fromOtherTab(m);
    this.e2eeKV = deps.e2eeKV !== undefined ? deps.e2eeKV : typeof indexedDB !== 'undefined' ? idbKV() : null;
    this.urls = new UrlCache((id) => this.api.request<SignedUrls>('GET', `/attachments/${enc(id)}/url`), this.now);
    this.api.onSession = (s) => this.onSession(s);
    this.api.onSignedOut = () => this.endSession(true);
    configureAvatars(this.api);
    this.connection = new Connection({
      getTicket: async () => (await this.api.request<{ ticket: string }>('POST', '/ws/ticket')).ticket,
      createSocket: deps.createSocket ?? defaultSocket,
      onFrame: (f) => this.onFrame(f),
      onReady: () => this.onReady(),
      onState: (s) => {
        this.conn.value = s;
        if (s === 'open') this.connFailures.value = 0;
      },
      onWait: (_ms, failures) => {
        this.connFailures.value = failures;
      },
      onPolicyClose: async () => {
        if (!this.api.signedIn) return false;
        try {
          await this.api.refresh();
          return true;
        } catch (e) {
          // Refused: onSignedOut already ran. Unreachable: keep trying.
          return toApiError(e).status !== 401 && this.api.signedIn;
        }
      },
      timers: this.t,
      random: deps.random,
    });
  }

  // ------------------------------------------------------------------ session

  /**
   * At page load: a refresh cookie, if any, restores the session. While the server cannot
   * be reached it tries again by itself (2, 5, 10, then every 30 s); `auto` is such an
   * attempt, which leaves the "can't reach" screen up while it runs.
   */
  async restore(auto = false): Promise<void> {
    this.t.clearTimeout(this.restoreTimer);
    this.restoreTimer = null;
    if (!auto) {
      this.auth.value = 'loading';
      this.notice.value = null;
    }
    if (!this.session.maybeSignedIn()) {
      // Never signed in in this browser, or signed out since: there is no cookie worth a
      // refresh (it is HttpOnly, so the page cannot look), and asking would only log a 401.
      this.restoreAttempt = 0;
      this.auth.value = 'signedOut';
      return;
    }
    try {
      await this.api.refresh();
      await this.enter();
      this.restoreAttempt = 0;
      this.notice.value = null;
    } catch (e) {
      const err = toApiError(e);
      if (err.status === 0 || err.status >= 500) {
        // The server cannot say whether the cookie is good: offer to try again, and try.
        this.notice.value = describeError(err);
        this.auth.value = 'unreachable';
        const delay = RESTORE_RETRY_MS[Math.min(this.restoreAttempt++, RESTORE_RETRY_MS.length - 1)];
        this.restoreTimer = this.t.setTimeout(() => {
          if (this.auth.value === 'unreachable') void this.restore(true);
        }, delay);
        return;
      }
      this.restoreAttempt = 0;
      this.auth.value = 'signedOut';
    }
  }

  /**
   * The browser says it is online again, or the tab became visible: if the page is waiting
   * for the server, try now rather than at the next attempt of the backoff.
   */
  online(): void {
    if (this.auth.value === 'unreachable') void this.restore(true);
    else this.retryConnection();
  }

  async login(login: string, password: string): Promise<void> {
    const s = await this.api.login(login, password);
    this.session.signedIn(s.user.id);
    await this.enter();
  }

  async register(username: string, email: string, password: string, displayName: string): Promise<void> {
    const s = await this.api.register(username, email, password, displayName);
    this.session.signedIn(s.user.id);
    await this.enter();
  }

  /**
   * Another tab of this browser signed in or out. They share the refresh cookie, so they
   * share the session: a sign-out there (or a session found ended there) ends it here; a
   * sign-in there is restored here from the cookie (this tab's own session, if another
   * person's, is over: the cookie now belongs to the new one).
   */
  private fromOtherTab(m: SessionMessage): void {
    const a = this.auth.value;
    if (m.type === 'signed-out') {
      if (a === 'signedOut') return;
      this.t.clearTimeout(this.restoreTimer);
      this.restoreTimer = null;
      this.endSession(m.expired, false);
      return;
    }
    if (a === 'signedIn' && this.me.value?.id === m.userId) return;
    if (a === 'loading') return; // a refresh is already under way; it takes the new cookie
    if (a === 'signedIn') this.endSession(false, false);
    // The message is the proof of a sign-in: this tab's view of localStorage may not show the
    // other tab's note yet (Chromium syncs it between renderer processes asynchronously, and
    // the message can come first), and restore() would then skip the refresh.
    this.session.hold(m.userId);
    void this.restore();
  }

  async logout(): Promise<void> {
    await this.runBeforeSignOut();
    await this.api.logout();
    this.endSession(false);
  }

  /** Changes my display name; the server tells my other sessions and my contacts (`user` frame). */
  async updateProfile(displayName: string): Promise<void> {
    const u = await this.api.request<User>('PATCH', '/me', { displayName });
    this.applyUser(u);
  }

  /** Makes an image my profile photo (the server crops and shrinks it); tells others as a name change does. */
  async setAvatar(file: Blob): Promise<void> {
    const res = await this.api.binary('PUT', '/me/avatar', file);
    this.applyUser((await res.json()) as User);
  }

  /** Removes my profile photo: initials again. */
  async removeAvatar(): Promise<void> {
    this.applyUser(await this.api.request<User>('DELETE', '/me/avatar'));
  }

  /** A person's name or photo changed (mine, or someone I share a conversation with). */
  private applyUser(u: Pick<User, 'id' | 'username' | 'displayName' | 'avatar'>): void {
    batch(() => {
      const me = this.me.value;
      if (me && me.id === u.id) this.me.value = { ...me, username: u.username, displayName: u.displayName, avatar: u.avatar };
      let changed = false;
      const next: Record<string, Conversation> = {};
      for (const [id, c] of Object.entries(this.conversations.value)) {
        if (c.members.some((m) => m.id === u.id && (m.displayName !== u.displayName || m.username !== u.username || m.avatar !== u.avatar))) {
          changed = true;
          next[id] = { ...c, members: c.members.map((m) => (m.id === u.id ? { ...m, username: u.username, displayName: u.displayName, avatar: u.avatar } : m)) };
        } else next[id] = c;
      }
      if (changed) this.conversations.value = next;
    });
  }

  /** Changes the password; other devices are signed out, this one continues. */
  async changePassword(current: string, next: string): Promise<void> {
    await this.api.changePassword(current, next);
  }

  private async runBeforeSignOut(): Promise<void> {
    try {
      await this.beforeSignOut?.();
    } catch {
      /* signing out goes on: the server drops a subscription that stays unused */
    }
  }

  async logoutAll(): Promise<void> {
    await this.runBeforeSignOut();
    try {
      await this.api.logoutAll();
    } catch (e) {
      this.notice.value = describeError(e);
      return;
    }
    this.endSession(false);
  }

  private onSession(s: Session): void {
    this.session.hold(s.user.id);
    batch(() => {
      this.me.value = s.user;
      this.sessionEnded.value = false;
    });
    this.t.clearTimeout(this.refreshTimer);
    this.refreshTimer = this.t.setTimeout(() => void this.proactiveRefresh(), refreshDelay(s, this.now()));
    // Extend the socket's session with the new token.
    this.connection.send({ type: 'auth', token: s.accessToken });
  }

  private async proactiveRefresh(): Promise<void> {
    if (!this.api.signedIn) return;
    try {
      await this.api.refresh();
    } catch (e) {
      const err = toApiError(e);
      if (err.status === 401) return; // signed out by onSignedOut
      // Server unreachable: try again soon; requests refresh on 401 anyway.
      this.t.clearTimeout(this.refreshTimer);
      this.refreshTimer = this.t.setTimeout(() => void this.proactiveRefresh(), 2000);
    }
  }

  private async enter(): Promise<void> {
    void this.loadNotifySettings();
    await this.startE2ee();
    await this.loadConversations();
    for (const c of Object.values(this.conversations.value)) if (c.e2ee && this.e2ee?.has(c.id)) this.e2ee.scheduleReconcile(c.id);
    this.restoreLocal();
    this.auth.value = 'signedIn';
    this.connection.start();
  }

  /**
   * Brings back this person's drafts and the messages they wrote that the server had not
   * confirmed (a reload, a closed tab). Those go out again, with their clientId, when the
   * socket is ready: the server stores a clientId once, so one that did arrive before is
   * answered with the stored message instead of being stored twice.
   */
  private restoreLocal(): void {
    const me = this.me.value;
    if (!me) return;
    this.local = new LocalState(this.storage, me.id);
    const convs = this.conversations.value;
    const drafts = this.local.drafts();
    for (const id of Object.keys(drafts)) if (!convs[id]) delete drafts[id];
    const gone: string[] = [];
    const threads = { ...this.threads.value };
    for (const p of this.local.pending()) {
      if (!convs[p.conversationId]) {
        gone.push(p.clientId);
        continue;
      }
      const t = threads[p.conversationId] ?? emptyThread();
      if (t.pending.some((x) => x.clientId === p.clientId)) continue;
      threads[p.conversationId] = { ...t, pending: [...t.pending, p] };
    }
    this.local.removePending(gone);
    batch(() => {
      this.drafts.value = drafts;
      this.threads.value = threads;
    });
  }

  /**
   * Ends the session in this tab. `tell`: the others end theirs too (not when this was
   * their news to begin with).
   */
  private endSession(expired: boolean, tell = true): void {
    if (tell) this.session.signedOut(expired);
    this.connection.stop();
    this.e2ee?.stop();
    this.e2ee = null;
    for (const h of this.inflightHidden.values()) this.t.clearTimeout(h.timer);
    this.inflightHidden.clear();
    // Drafts and unsent messages are this person's: none stay in the browser.
    this.local?.clear();
    this.local = null;
    clearAvatars();
    this.t.clearTimeout(this.refreshTimer);
    for (const f of this.inflight.values()) this.t.clearTimeout(f.timer);
    this.inflight.clear();
    this.failChanges();
    for (const h of this.uploading.values()) h.abort();
    this.uploading.clear();
    this.uploads.value = {};
    this.api.clear();
    this.cursors = {};
    this.seen = {};
    this.changes = {};
    this.readSent = {};
    this.presenceSeen = {};
    batch(() => {
      this.auth.value = 'signedOut';
      this.me.value = null;
      this.conversations.value = {};
      this.threads.value = {};
      this.typing.value = {};
      this.receipts.value = {};
      this.activeId.value = null;
      this.notice.value = null;
      this.sessionEnded.value = expired;
      this.drafts.value = {};
      this.readMark.value = null;
      this.reactors.value = {};
      this.notifySettings.value = null;
    });
  }

  // ------------------------------------------------------- end-to-end encryption

  /**
   * This browser as an MLS device: its keys loaded (or made and registered), KeyPackages
   * topped up, waiting Welcomes processed, before the conversations and the socket, so the
   * cursors of encrypted conversations start after what this device has processed.
   */
  private async startE2ee(): Promise<void> {
    const me = this.me.value;
    if (!this.e2eeKV || !me) return;
    try {
      // Loaded on sign-in, in a chunk of its own: the sign-in page does not carry the MLS library.
      const { E2ee } = await import('./e2ee/client');
      const e = new E2ee(this.api, me.id, this.e2eeKV, this.e2eeHost());
      await e.start();
      if (this.me.value?.id !== me.id) {
        e.stop(); // signed out (or another person signed in) meanwhile
        return;
      }
      this.e2ee = e;
      this.e2eeError.value = null;
    } catch (err) {
      console.warn('e2ee: unavailable', err);
      this.e2eeError.value = `End-to-end encryption is not available on this device: ${describeError(err)}`;
    }
  }

  /** Tries again to make this browser a device (after a lost one was removed to make room under the cap). */
  async retryE2ee(): Promise<void> {
    if (this.e2ee || this.auth.value !== 'signedIn') return;
    await this.startE2ee();
  }

  private e2eeHost(): Host {
    return {
      conversation: (id) => this.conversations.value[id],
      deliver: (id, m) => this.deliverPlain(id, m),
      edited: (id, _t, target, body, at) => {
        const me = this.me.value?.id ?? null;
        this.setThread(id, (t) => applyEvent(t, { type: 'message_edited', conversationId: id, messageId: target, seq: 0, body, editedAt: at }, me));
        const c = this.conversations.value[id];
        if (c?.lastMessage?.id === target) this.conversations.value = { ...this.conversations.value, [id]: { ...c, lastMessage: { ...c.lastMessage, body, editedAt: at } } };
      },
      reacted: (id, target, emoji, userId, added, counts) => {
        const me = this.me.value?.id ?? null;
        this.setThread(id, (t) => applyEvent(t, { type: 'reaction', conversationId: id, messageId: target, seq: 0, emoji, userId, added, counts }, me));
        const per = this.reactors.value[target] ?? {};
        const users = (per[emoji] ?? []).filter((u) => u !== userId);
        if (added) users.push(userId);
        this.reactors.value = { ...this.reactors.value, [target]: { ...per, [emoji]: users } };
      },
      consumed: (id, seq) => {
        this.noteSeqs(id, [seq]);
        const c = this.conversations.value[id];
        if (c && seq > c.lastSeq) this.conversations.value = { ...this.conversations.value, [id]: { ...c, lastSeq: seq } };
      },
      syncFrom: (id, seq) => {
        // From exactly there: after a Welcome, what came after the commit that added this
        // device (some of it may have been shown unreadable before the Welcome was
        // processed, and is replaced now); when waiting, from the last seq processed.
        this.cursors[id] = seq;
        this.connection.send({ type: 'sync', cursors: { [id]: seq } });
      },
    };
  }

  /** A message of an encrypted conversation, decrypted (or marked unreadable), in seq order. */
  private deliverPlain(id: string, m: Message): void {
    const before = this.conversations.value[id];
    const held = this.thread(id).messages.some((x) => x.id === m.id);
    const fresh = !!before && m.seq > before.lastSeq && !held;
    // A message first shown unreadable (before this device joined, or before its
    // plaintext was known here) is replaced by what the device now knows of it.
    if (held) this.setThread(id, (t) => replaceMessage(t, m));
    this.ingest(id, [m]);
    const after = this.conversations.value[id];
    if (fresh && after && this.onIncoming && m.senderId !== this.me.value?.id) this.onIncoming(m, after);
  }

  /** An encrypted conversation I was removed from (or never joined on this device). */
  e2eeBlocked(id: string): string | null {
    const c = this.conversations.value[id];
    if (!c?.e2ee) return null;
    if (!this.e2ee) return this.e2eeError.value ?? E2EE_UNAVAILABLE;
    const info = this.e2ee.info(id);
    if (!info) return 'This device has not joined this encrypted conversation yet.';
    if (info.stuck) return 'This device fell out of step with this encrypted conversation and cannot read new messages. Remove it in Account → Devices from another device, then sign in here again.';
    if (info.removed) return 'You were removed from this conversation. New messages cannot be read here.';
    return null;
  }

  /** Sends an encrypted edit or reaction (an application message the thread does not show). */
  private async sendHidden(conversationId: string, p: Payload): Promise<void> {
    const e2ee = this.needE2ee();
    const clientId = newClientId();
    return new Promise<void>((resolve, reject) => {
      const attempt = async (): Promise<void> => {
        await e2ee.prepare(clientId, p);
        const ciphertext = await e2ee.encrypt(conversationId, p);
        const id = `h${++this.reqSeq}`;
        const done = (err?: unknown) => {
          const x = err as { code?: string; epoch?: number } | undefined;
          if (x?.code === 'stale_epoch') {
            void e2ee.waitEpoch(conversationId, x.epoch ?? 0).then(() => attempt().catch(reject));
            return;
          }
          if (err) reject(err);
          else resolve();
        };
        if (this.connection.send({ type: 'send', id, conversationId, clientId, ciphertext })) {
          const timer = this.t.setTimeout(() => {
            if (this.inflightHidden.delete(id)) reject({ code: 'timeout' });
          }, this.ackTimeoutMs);
          this.inflightHidden.set(id, { conversationId, clientId, timer, done });
          return;
        }
        try {
          const m = await this.api.request<Message>('POST', `/conversations/${enc(conversationId)}/messages`, { clientId, ciphertext });
          e2ee.incomingMessage(m);
          done();
        } catch (err) {
          done(err);
        }
      };
      attempt().catch(reject);
    });
  }

  // ------------------------------------------------------------ notifications

  async loadNotifySettings(): Promise<void> {
    try {
      this.notifySettings.value = await this.api.request<NotifySettings>('GET', '/me/notifications');
    } catch {
      /* the dialog asks again when opened */
    }
  }

  /** PATCH /me/notifications: `pushPreview`, `mentionsBreakMute`, `dnd` (off, 1h, 8h, always) or `dndUntil`. */
  async updateNotifySettings(change: { pushPreview?: boolean; mentionsBreakMute?: boolean; dnd?: string; dndUntil?: string }): Promise<void> {
    this.notifySettings.value = await this.api.request<NotifySettings>('PATCH', '/me/notifications', change);
  }

  /** Mutes a conversation for me (1h, 8h, 1w, always) or unmutes it (off). Unread still counts. */
  async setMute(conversationId: string, mute: string): Promise<void> {
    const r = await this.api.request<{ mutedUntil: string | null }>('PUT', `/conversations/${enc(conversationId)}/notifications`, { mute });
    const c = this.conversations.value[conversationId];
    if (!c) return;
    const { mutedUntil: _old, ...rest } = c;
    this.conversations.value = { ...this.conversations.value, [conversationId]: r.mutedUntil ? { ...rest, mutedUntil: r.mutedUntil } : rest };
  }

  /** Tells the server whether this page is visible (on connect and on every change). */
  sendVisibility(): void {
    this.connection.send({ type: 'visibility', visible: this.visible() });
  }

  // ------------------------------------------------------------ conversations

  async loadConversations(): Promise<void> {
    const asked = this.presenceCount;
    const { conversations } = await this.api.request<{ conversations: Conversation[] }>('GET', '/conversations');
    const next: Record<string, Conversation> = {};
    const old = this.conversations.value;
    for (const answered of conversations) {
      const c = this.withNewerPresence(this.readable(answered), asked);
      const prev = old[c.id];
      next[c.id] = prev && prev.lastSeq > c.lastSeq ? { ...c, lastSeq: prev.lastSeq, lastMessage: prev.lastMessage, lastActivity: prev.lastActivity } : c;
      if (this.cursors[c.id] === undefined) this.cursors[c.id] = this.startCursor(c);
    }
    // Encrypted conversations I was removed from stay listed (nothing new can be read there).
    for (const [id, c] of Object.entries(old)) if (!next[id] && c.e2ee && this.e2ee?.info(id)?.removed) next[id] = c;
    this.conversations.value = next;
  }

  /** c with the presence of frames that arrived after its list was asked for. */
  private withNewerPresence(c: Conversation, asked: number): Conversation {
    if (!c.members.some((m) => (this.presenceSeen[m.id]?.n ?? 0) > asked)) return c;
    return {
      ...c,
      members: c.members.map((m) => {
        const p = this.presenceSeen[m.id];
        return p && p.n > asked ? { ...m, online: p.online, lastSeen: p.lastSeen ?? m.lastSeen } : m;
      }),
    };
  }

  upsertConversation(answered: Conversation): void {
    const c = this.readable(answered);
    const prev = this.conversations.value[c.id];
    const merged = prev && prev.lastSeq > c.lastSeq ? { ...c, lastSeq: prev.lastSeq, lastMessage: prev.lastMessage, lastActivity: prev.lastActivity } : c;
    this.conversations.value = { ...this.conversations.value, [c.id]: merged };
    if (this.cursors[c.id] === undefined) {
      // A conversation new to this page: tell the server where this socket stands
      // in it (docs/api.md, rule 2), so its live messages come in order at once.
      this.cursors[c.id] = this.startCursor(c);
      this.connection.send({ type: 'sync', cursors: { [c.id]: this.cursors[c.id] } });
    } else if (c.e2ee && prev && this.e2ee?.has(c.id)) {
      // Members may have changed: the group follows.
      this.e2ee.scheduleReconcile(c.id);
    }
  }

  /** An encrypted conversation's last message as this device can show it. */
  private readable(c: Conversation): Conversation {
    if (!c.e2ee || !c.lastMessage?.ciphertext) return c;
    return { ...c, lastMessage: this.e2ee ? this.e2ee.preview(c.lastMessage) : { ...c.lastMessage, body: '', undecryptable: true } };
  }

  /** Where a conversation's cursor starts: its newest seq, or, encrypted, after what this device processed. */
  private startCursor(c: Conversation): number {
    if (c.e2ee) {
      const at = this.e2ee?.cursor(c.id);
      if (at !== undefined) return Math.min(at, c.lastSeq);
    }
    return c.lastSeq;
  }

  async startDirect(userId: string, e2ee = false): Promise<Conversation> {
    if (e2ee) this.needE2ee();
    const meta: { status?: number } = {};
    const c = await this.api.request<Conversation>('POST', '/conversations/direct', { userId, ...(e2ee ? { e2ee: true } : {}) }, meta);
    this.upsertConversation(c);
    // Only the device that created it makes the group (201); one that already existed has
    // its group, and this device is added to it by a commit of another device (a Welcome).
    if (c.e2ee && meta.status === 201) await this.startGroup(c);
    return c;
  }

  async createGroup(title: string, memberIds: string[], e2ee = false): Promise<Conversation> {
    if (e2ee) this.needE2ee();
    const c = await this.api.request<Conversation>('POST', '/conversations/group', { title, memberIds, ...(e2ee ? { e2ee: true } : {}) });
    this.upsertConversation(c);
    if (c.e2ee) await this.startGroup(c);
    return c;
  }

  /** This browser's MLS device, or the e2ee_unavailable error saying why there is none. */
  private needE2ee(): E2ee {
    if (!this.e2ee) throw new ApiError(0, 'e2ee_unavailable', this.e2eeError.value ?? E2EE_UNAVAILABLE);
    return this.e2ee;
  }

  /** A new encrypted conversation: this device makes the group and adds the others' devices. */
  private async startGroup(c: Conversation): Promise<void> {
    if (!this.e2ee || this.e2ee.has(c.id) || (c.mlsEpoch ?? 0) > 0) return;
    try {
      await this.e2ee.created(c);
    } catch (e) {
      this.notice.value = `The encrypted group could not be set up yet: ${describeError(e)}`;
    }
  }

  async addMember(conversationId: string, userId: string): Promise<void> {
    const cur = this.conversations.value[conversationId];
    if (cur?.e2ee) {
      // The person's devices join by an MLS commit, which also adds them on the server.
      await this.needE2ee().addUser(conversationId, userId);
      await this.fetchConversation(conversationId);
      return;
    }
    const c = await this.api.request<Conversation>('POST', `/conversations/${enc(conversationId)}/members`, { userId });
    this.upsertConversation(c);
  }

  async removeMember(conversationId: string, userId: string): Promise<void> {
    const cur = this.conversations.value[conversationId];
    if (cur?.e2ee && userId !== this.me.value?.id && this.e2ee?.has(conversationId)) {
      // Their devices leave by an MLS commit (so they cannot read what follows), which also removes them on the server.
      await this.e2ee.removeUser(conversationId, userId);
      const c = this.conversations.value[conversationId];
      if (c) this.upsertConversation({ ...c, members: c.members.filter((m) => m.id !== userId) });
      return;
    }
    await this.api.request('DELETE', `/conversations/${enc(conversationId)}/members/${enc(userId)}`);
    if (userId === this.me.value?.id) {
      this.forget(conversationId);
      return;
    }
    const c = this.conversations.value[conversationId];
    if (c) this.upsertConversation({ ...c, members: c.members.filter((m) => m.id !== userId) });
  }

  async searchUsers(q: string): Promise<User[]> {
    const { users } = await this.api.request<{ users: User[] }>('GET', `/users?q=${encodeURIComponent(q)}&limit=20`);
    return users.filter((u) => u.id !== this.me.value?.id);
  }

  private forget(conversationId: string): void {
    const { [conversationId]: _c, ...rest } = this.conversations.value;
    const { [conversationId]: _t, ...threads } = this.threads.value;
    delete this.cursors[conversationId];
    delete this.seen[conversationId];
    const t = this.threads.value[conversationId];
    if (t?.pending.length) this.local?.removePending(t.pending.map((p) => p.clientId));
    this.local?.setDraft(conversationId, '');
    const { [conversationId]: _d, ...drafts } = this.drafts.value;
    batch(() => {
      this.conversations.value = rest;
      this.threads.value = threads;
      this.drafts.value = drafts;
      if (this.activeId.value === conversationId) this.activeId.value = null;
    });
  }

  // ----------------------------------------------------------------- messages

  thread(id: string): Thread {
    return this.threads.value[id] ?? emptyThread();
  }

  private setThread(id: string, f: (t: Thread) => Thread): void {
    const cur = this.thread(id);
    const next = f(cur);
    if (next === cur) return;
    this.threads.value = { ...this.threads.value, [id]: next };
    if (next.pending !== cur.pending) this.savePending(cur.pending, next.pending);
  }

  /** Keeps the stored copy of unconfirmed messages in step with a thread's. */
  private savePending(before: readonly Pending[], after: readonly Pending[]): void {
    const local = this.local;
    if (!local) return;
    const now = new Map(after.map((p) => [p.clientId, p]));
    local.removePending(before.filter((p) => !now.has(p.clientId)).map((p) => p.clientId));
    const was = new Map(before.map((p) => [p.clientId, p]));
    for (const p of after) if (was.get(p.clientId) !== p) local.putPending(p);
  }

  draft(conversationId: string): string {
    return this.drafts.value[conversationId] ?? '';
  }

  /** The composer's text changed: kept per conversation, across switching and reloads. */
  setDraft(conversationId: string, text: string): void {
    if (this.draft(conversationId) === text) return;
    const { [conversationId]: _old, ...rest } = this.drafts.value;
    this.drafts.value = text === '' ? rest : { ...rest, [conversationId]: text };
    this.local?.setDraft(conversationId, text);
  }

  /** Opens a conversation: loads its newest page once, marks it read. */
  async open(id: string | null): Promise<void> {
    this.activeId.value = id;
    if (this.readMark.value && this.readMark.value.conversationId !== id) this.readMark.value = null;
    if (!id) return;
    if (!this.thread(id).loaded) {
      try {
        const r = await this.fromHistory(id, await this.api.request<{ messages: Message[]; hasMore: boolean }>('GET', `/conversations/${enc(id)}/messages?limit=50`));
        // Messages held from before (live, or a restored send's answer) that are older than
        // this page would leave a hole in the view: they come back when scrolling up.
        const oldest = r.hasMore && r.messages.length ? r.messages[0].seq : 0;
        if (oldest) this.setThread(id, (t) => (t.messages.some((m) => m.seq < oldest) ? { ...t, messages: t.messages.filter((m) => m.seq >= oldest) } : t));
        this.ingest(id, r.messages);
        this.setThread(id, (t) => ({ ...t, loaded: true, hasMore: r.hasMore }));
      } catch (e) {
        this.notice.value = describeError(e);
        return;
      }
    }
    this.markRead(id);
  }

  /** Loads the page before the oldest message held (scrolling up). */
  async loadOlder(id: string): Promise<number> {
    const t = this.thread(id);
    if (!t.hasMore || t.messages.length === 0) return 0;
    const before = t.messages[0].seq;
    try {
      const r = await this.fromHistory(id, await this.api.request<{ messages: Message[]; hasMore: boolean }>('GET', `/conversations/${enc(id)}/messages?before=${before}&limit=50`));
      this.setThread(id, (x) => ({ ...receive(x, r.messages, this.me.value?.id ?? null), hasMore: r.hasMore }));
      return r.messages.length;
    } catch (e) {
      this.notice.value = describeError(e);
      return 0;
    }
  }

  /** A page of history as this device can show it (encrypted conversations: the plaintext it kept). */
  private async fromHistory(id: string, r: { messages: Message[]; hasMore: boolean }): Promise<{ messages: Message[]; hasMore: boolean }> {
    if (!this.conversations.value[id]?.e2ee && !r.messages.some((m) => m.ciphertext)) return r;
    await this.e2ee?.loadKept(r.messages);
    const out: Message[] = [];
    for (const m of r.messages) {
      const x = this.e2ee ? this.e2ee.fromHistory(m) : { ...m, body: '', undecryptable: true };
      if (x) out.push(x);
    }
    return { messages: out, hasMore: r.hasMore };
  }

  /** Adds stored messages to a thread, confirms my pending ones, advances the cursor and the list. */
  private ingest(id: string, msgs: Message[]): void {
    if (msgs.length === 0) return;
    const me = this.me.value?.id ?? null;
    this.setThread(id, (t) => receive(t, msgs, me));
    this.noteSeqs(
      id,
      msgs.map((m) => m.seq),
    );
    const newest = msgs.reduce((a, b) => (b.seq > a.seq ? b : a));
    const c = this.conversations.value[id];
    if (!c) {
      void this.fetchConversation(id);
      return;
    }
    if (newest.seq > c.lastSeq) {
      const fresh = msgs.filter((m) => m.seq > c.lastSeq && m.senderId !== me).length;
      const ownNewest = msgs.filter((m) => m.senderId === me).reduce((a, m) => Math.max(a, m.seq), 0);
      const readSeq = Math.max(c.readSeq, ownNewest);
      const unread = this.isReading(id) ? 0 : c.unread + fresh;
      this.conversations.value = {
        ...this.conversations.value,
        [id]: { ...c, lastSeq: newest.seq, lastMessage: newest, lastActivity: newest.createdAt, unread: ownNewest === newest.seq ? 0 : unread, readSeq },
      };
    } else if (c.lastMessage && !c.lastMessage.attachments) {
      // The conversation list's lastMessage comes without its files: the loaded one has them.
      const held = msgs.find((m) => m.id === c.lastMessage!.id);
      if (held?.attachments) this.conversations.value = { ...this.conversations.value, [id]: { ...c, lastMessage: held } };
    }
    // The sender stopped typing.
    const ty = this.typing.value[id];
    if (ty && msgs.some((m) => ty[m.senderId])) {
      const copy = { ...ty };
      for (const m of msgs) delete copy[m.senderId];
      this.typing.value = { ...this.typing.value, [id]: copy };
    }
    if (this.isReading(id)) this.markRead(id);
  }

  /**
   * Moves the conversation's cursor over seqs that arrived (messages and change events
   * share the counter). A hole between the cursor and what arrived asks for what is missing.
   */
  private noteSeqs(id: string, seqs: number[]): void {
    const cur = this.cursors[id] ?? 0;
    const seen = (this.seen[id] ??= new Set());
    let top = 0;
    for (const s of seqs) {
      if (s > cur) seen.add(s);
      top = Math.max(top, s);
    }
    const next = advanceOver(cur, seen);
    this.cursors[id] = next;
    if (seen.size === 0) delete this.seen[id];
    if (top > next) this.connection.send({ type: 'sync', cursors: { [id]: next } });
  }

  /** Change events (edits, deletions, reactions, settings), in seq order. */
  private ingestEvents(id: string, evs: ChangeEvent[]): void {
    if (evs.length === 0) return;
    const me = this.me.value?.id ?? null;
    // Unread messages of others deleted now no longer count (when they are held, so known).
    const before = this.thread(id).messages;
    const readSeq = this.conversations.value[id]?.readSeq ?? Infinity;
    const unreadGone = evs.filter((ev) => {
      if (ev.type !== 'message_deleted') return false;
      const m = before.find((x) => x.id === ev.messageId);
      return !!m && !m.deleted && m.senderId !== me && m.seq > readSeq;
    }).length;
    this.setThread(id, (t) => evs.reduce((x, ev) => applyEvent(x, ev, me), t));
    this.changes[id] = (this.changes[id] ?? 0) + evs.length;
    for (const ev of evs) {
      if (ev.type !== 'reaction') continue;
      const per = this.reactors.value[ev.messageId] ?? {};
      const users = (per[ev.emoji] ?? []).filter((u) => u !== ev.userId);
      if (ev.added) users.push(ev.userId);
      this.reactors.value = { ...this.reactors.value, [ev.messageId]: { ...per, [ev.emoji]: users } };
    }
    this.noteSeqs(
      id,
      evs.map((e) => e.seq),
    );
    const c = this.conversations.value[id];
    if (!c) {
      void this.fetchConversation(id);
      return;
    }
    let next = unreadGone && c.unread > 0 ? { ...c, unread: Math.max(0, c.unread - unreadGone) } : c;
    for (const ev of evs) {
      if (ev.seq > next.lastSeq) next = { ...next, lastSeq: ev.seq };
      if (ev.type === 'conversation_settings') next = { ...next, expireAfter: ev.expireAfter };
      else if (next.lastMessage?.id === ev.messageId) {
        const held = this.thread(id).messages.find((m) => m.id === ev.messageId);
        if (held) next = { ...next, lastMessage: held };
        else if (ev.type === 'message_deleted') {
          const { attachments: _gone, ...rest } = next.lastMessage;
          next = { ...next, lastMessage: { ...rest, body: '', deleted: { at: ev.deletedAt, reason: ev.reason } } };
        }
        else if (ev.type === 'message_edited') next = { ...next, lastMessage: { ...next.lastMessage, body: ev.body, editedAt: ev.editedAt } };
      }
    }
    if (next !== c) this.conversations.value = { ...this.conversations.value, [id]: next };
    if (this.isReading(id)) this.markRead(id);
  }

  private isEncrypted(m: Message): boolean {
    return !!m.ciphertext || !!this.conversations.value[m.conversationId]?.e2ee;
  }

  /** A message of an encrypted conversation: decrypted in seq order by this device, or unreadable. */
  private incomingEncrypted(m: Message): void {
    if (this.e2ee && this.e2ee.has(m.conversationId)) {
      this.e2ee.incomingMessage(m);
      return;
    }
    if (this.e2ee && !m.deleted) {
      // Not joined on this device yet: a Welcome may be waiting.
      void this.e2ee.fetchWelcomes().catch(() => undefined);
    }
    const { ciphertext: _c, ...rest } = m;
    this.deliverPlain(m.conversationId, { ...rest, body: '', undecryptable: !m.deleted, ...(this.e2ee && !m.deleted ? { beforeJoin: true } : {}) });
  }

  private async fetchConversation(id: string): Promise<void> {
    try {
      const c = await this.api.request<Conversation>('GET', `/conversations/${enc(id)}`);
      this.upsertConversation(c);
    } catch {
      /* not a member (any more) */
    }
  }

  private isReading(id: string): boolean {
    return this.activeId.value === id && this.visible();
  }

  /** Tells the server (and so the others) that everything shown is seen. */
  markRead(id: string): void {
    const c = this.conversations.value[id];
    const t = this.thread(id);
    const seq = Math.max(c?.lastSeq ?? 0, t.messages.length ? t.messages[t.messages.length - 1].seq : 0);
    if (!c || seq === 0) return;
    if (c.unread > 0 && this.activeId.value === id) {
      // Looked at with unread messages: "New messages" goes after what was read before.
      this.readMark.value = { conversationId: id, seq: c.readSeq };
    }
    if (c.unread !== 0 || c.readSeq < seq) {
      this.conversations.value = { ...this.conversations.value, [id]: { ...c, unread: 0, readSeq: Math.max(c.readSeq, seq) } };
    }
    if ((this.readSent[id] ?? 0) >= seq) return;
    this.readSent[id] = seq;
    if (!this.connection.send({ type: 'read', conversationId: id, seq })) {
      this.api.request('POST', `/conversations/${enc(id)}/read`, { seq }).catch(() => {
        this.readSent[id] = 0;
      });
    }
  }

  /** Escape in a conversation: everything in it is read now, and "New messages" goes. */
  markReadNow(id: string): void {
    this.markRead(id);
    if (this.readMark.value?.conversationId === id) this.readMark.value = null;
  }

  /**
   * Writes a message: shown at once as pending, confirmed by its ack. `attachments` are
   * uploads already made (their ids go with every send of it, the first and any resend).
   * `keepDraft`: a voice message, which leaves the text being written alone.
   */
  send(conversationId: string, body: string, replyTo?: Message, attachments?: Attachment[], keepDraft = false): string {
    const clientId = newClientId();
    if (!keepDraft) this.setDraft(conversationId, '');
    const ref: ReplyRef | undefined = replyTo ? { id: replyTo.id, seq: replyTo.seq, senderId: replyTo.senderId, excerpt: excerpt(replyTo.body), deleted: !!replyTo.deleted } : undefined;
    const files = attachments?.length ? attachments : undefined;
    if (files) {
      // Sent: they leave the composer.
      const ids = new Set(files.map((a) => a.id));
      this.setUploads(conversationId, (q) => q.filter((u) => !(u.attachment && ids.has(u.attachment.id))));
    }
    this.setThread(conversationId, (t) =>
      addPending(t, { clientId, conversationId, body, createdAt: new Date(this.now()).toISOString(), ...(ref ? { replyTo: ref } : {}), ...(files ? { attachments: files } : {}) }),
    );
    void this.dispatch(conversationId, clientId, body, ref?.id, files);
    return clientId;
  }

  /** Sends a failed message again with the same clientId (the server stores it once). */
  retry(conversationId: string, clientId: string): void {
    const p = this.thread(conversationId).pending.find((x) => x.clientId === clientId);
    if (!p) return;
    this.setThread(conversationId, (t) => retryPending(t, clientId));
    void this.dispatch(conversationId, clientId, p.body, p.replyTo?.id, p.attachments);
  }

  // -------------------------------------------------------------- attachments

  private setUploads(conversationId: string, f: (q: Upload[]) => Upload[]): void {
    const cur = this.uploads.value[conversationId] ?? [];
    const next = f(cur);
    if (next === cur) return;
    const all = { ...this.uploads.value };
    if (next.length) all[conversationId] = next;
    else delete all[conversationId];
    this.uploads.value = all;
  }

  /**
   * Uploads files for the next message of a conversation (its composer shows them). At most
   * MAX_ATTACHMENTS per message: returns how many were left out. `voice`: a recording, sent
   * on its own as soon as it is uploaded.
   */
  attach(conversationId: string, files: ReadonlyArray<Blob & { name: string }>, voice = false): number {
    const { queue, added, refused } = addUploads(this.uploads.value[conversationId] ?? [], files, { voice });
    this.setUploads(conversationId, () => queue);
    added.forEach((u, i) => {
      const file = files[i];
      let last = 0;
      const h = (this.conversations.value[conversationId]?.e2ee ? this.sealedUpload : uploadFile)(this.api, file, u.name, (loaded) => {
        // Progress events come often; a re-render per 1 % is plenty.
        if (loaded !== 0 && loaded - last < u.size / 100 && loaded < u.size) return;
        last = loaded;
        this.setUploads(conversationId, (q) => uploadProgress(q, u.key, loaded));
      });
      this.uploading.set(u.key, h);
      h.promise.then(
        (a) => {
          this.uploading.delete(u.key);
          if (!(this.uploads.value[conversationId] ?? []).some((x) => x.key === u.key)) return;
          this.setUploads(conversationId, (q) => uploadDone(q, u.key, a));
          if (voice) this.send(conversationId, '', undefined, [a], true);
        },
        (e) => {
          this.uploading.delete(u.key);
          if (toApiError(e).code === 'aborted') return;
          this.setUploads(conversationId, (q) => uploadFailed(q, u.key, describeUploadError(e)));
        },
      );
    });
    return refused;
  }

  /**
   * An upload to an encrypted conversation: the bytes are encrypted here (AES-128-GCM, a
   * fresh key per file) and stored by the server as they are (`opaque=true`); the key,
   * IV, real name, type and size travel inside the MLS message.
   */
  private sealedUpload = (api: ApiClient, file: Blob & { name?: string }, name: string, onProgress: (loaded: number) => void): UploadHandle => {
    let inner: UploadHandle | null = null;
    let aborted = false;
    const promise = (async () => {
      const { ct, key, iv } = await sealFile(await file.arrayBuffer());
      if (aborted) throw new ApiError(0, 'aborted', 'cancelled');
      inner = uploadFile(api, new Blob([ct], { type: 'application/octet-stream' }), 'encrypted', onProgress, undefined, '/api/v1/attachments?opaque=true');
      const a = await inner.promise;
      return sealedAttachment({ id: a.id, key: toBase64(key), iv: toBase64(iv), name, type: file.type || 'application/octet-stream', size: file.size });
    })();
    return {
      promise,
      abort: () => {
        aborted = true;
        inner?.abort();
      },
    };
  };

  /** Cancels an upload (the server keeps nothing of it) or removes a file from the next message. */
  cancelUpload(conversationId: string, key: string): void {
    this.uploading.get(key)?.abort();
    this.uploading.delete(key);
    const done = (this.uploads.value[conversationId] ?? []).find((u) => u.key === key && u.status === 'done')?.attachment;
    this.setUploads(conversationId, (q) => removeUpload(q, key));
    // A finished upload taken off the message is deleted on the server at once, so it
    // stops counting against the quota (else it would until the upload expiry). If this
    // fails, the server's collector deletes it later: nothing to tell the user.
    if (done) void this.api.request('DELETE', `/attachments/${enc(done.id)}`).catch(() => undefined);
  }

  discard(conversationId: string, clientId: string): void {
    this.setThread(conversationId, (t) => dropPending(t, clientId));
  }

  private async dispatch(conversationId: string, clientId: string, body: string, replyTo?: string, files?: Attachment[]): Promise<void> {
    const id = `s${++this.reqSeq}`;
    const attachments = files?.length ? { attachments: files.map((a) => a.id) } : {};
    let content: { body: string; replyTo?: string } | { ciphertext: string } = { body, ...(replyTo ? { replyTo } : {}) };
    if (this.conversations.value[conversationId]?.e2ee) {
      // Encrypted: text, reply target and file keys go inside the MLS message; the server
      // gets the ciphertext (and the ids of the opaque uploads, so it can link them).
      try {
        const e2ee = this.needE2ee();
        const payload: Payload = e2ee.outgoing(clientId) ?? {
          v: 1,
          type: 'text',
          id: clientId,
          text: body,
          ...(replyTo ? { replyTo } : {}),
          ...(files?.some((a) => a.sealed) ? { attachments: files.filter((a) => a.sealed).map((a) => a.sealed!) } : {}),
        };
        await e2ee.prepare(clientId, payload);
        content = { ciphertext: await e2ee.encrypt(conversationId, payload) };
      } catch (e) {
        this.setThread(conversationId, (t) => failPending(t, clientId, e instanceof Error && !(e instanceof ApiError) ? e.message : describeError(e, 'send')));
        return;
      }
    }
    if (this.connection.send({ type: 'send', id, conversationId, clientId, ...content, ...attachments })) {
      const timer = this.t.setTimeout(() => {
        this.inflight.delete(id);
        if (isPending(this.thread(conversationId), clientId)) {
          this.setThread(conversationId, (t) => failPending(t, clientId, describeError({ code: 'timeout' })));
          // No answer is not a refusal: it goes out again by itself on the next socket.
          this.unanswered.add(clientId);
        }
      }, this.ackTimeoutMs);
      this.inflight.set(id, { conversationId, clientId, timer });
      return;
    }
    // No socket right now: the REST endpoint is just as idempotent.
    try {
      const m = await this.api.request<Message>('POST', `/conversations/${enc(conversationId)}/messages`, { clientId, ...content, ...attachments });
      if (this.isEncrypted(m)) this.incomingEncrypted(m);
      else this.ingest(conversationId, [m]);
    } catch (e) {
      const err = toApiError(e);
      if (err.code === 'stale_epoch' && this.e2ee) {
        await this.e2ee.waitEpoch(conversationId, err.epoch ?? 0);
        return this.dispatch(conversationId, clientId, body, replyTo, files);
      }
      if (err.status === 0 && (this.conn.value === 'reconnecting' || this.conn.value === 'connecting')) {
        // The server is out of reach for now: the message waits, and goes out by itself
        // when the socket is back (the page keeps trying for as long as it is open).
        return;
      }
      this.setThread(conversationId, (t) => failPending(t, clientId, describeError(err, 'send')));
    }
  }

  // ------------------------------------------------------ edits, deletions, reactions

  /** Replaces the text of one of my messages. Rejects with the server's error. */
  edit(conversationId: string, messageId: string, body: string): Promise<void> {
    if (this.conversations.value[conversationId]?.e2ee) return this.sendHidden(conversationId, { v: 1, type: 'edit', target: messageId, text: body });
    return this.change(conversationId, { type: 'edit', id: '', conversationId, messageId, body }, 'PATCH', `/messages/${enc(messageId)}`, { body });
  }

  /** Deletes a message for everyone (it becomes a tombstone). */
  deleteMessage(conversationId: string, messageId: string): Promise<void> {
    return this.change(conversationId, { type: 'delete', id: '', conversationId, messageId }, 'DELETE', `/messages/${enc(messageId)}`);
  }

  /** Adds (or removes) my reaction. */
  react(conversationId: string, messageId: string, emoji: string, remove = false): Promise<void> {
    if (this.conversations.value[conversationId]?.e2ee) return this.sendHidden(conversationId, { v: 1, type: 'reaction', target: messageId, emoji, add: !remove });
    return this.change(
      conversationId,
      { type: 'react', id: '', conversationId, messageId, emoji, ...(remove ? { remove: true } : {}) },
      remove ? 'DELETE' : 'PUT',
      `/messages/${enc(messageId)}/reactions/${enc(emoji)}`,
    );
  }

  /** Disappearing messages: 0 (off) or one of the server's choices, in seconds. */
  async setExpireAfter(conversationId: string, expireAfter: number): Promise<void> {
    const c = await this.api.request<Conversation>('PUT', `/conversations/${enc(conversationId)}/settings`, { expireAfter });
    this.upsertConversation(c);
  }

  /**
   * Sends a change over the socket (REST when it is not open). Its answer is the message as
   * it now is; it is put in place unless a change event came since (events carry the order;
   * ours comes too).
   */
  private change(conversationId: string, frame: Extract<ClientFrame, { type: 'edit' | 'delete' | 'react' }>, method: string, path: string, body?: unknown): Promise<void> {
    const mark = this.changes[conversationId] ?? 0;
    const apply = (m: Message) => {
      if ((this.changes[conversationId] ?? 0) !== mark) return;
      this.setThread(conversationId, (t) => replaceMessage(t, m));
      const c = this.conversations.value[conversationId];
      if (c?.lastMessage?.id === m.id) this.conversations.value = { ...this.conversations.value, [conversationId]: { ...c, lastMessage: m } };
    };
    const id = `e${++this.reqSeq}`;
    return new Promise<void>((resolve, reject) => {
      const done = (m: Message | null, err?: unknown) => {
        if (m) {
          apply(m);
          resolve();
        } else reject(err ?? { code: 'network' });
      };
      if (this.connection.send({ ...frame, id })) {
        const timer = this.t.setTimeout(() => {
          if (this.inflightChange.delete(id)) reject({ code: 'timeout' });
        }, this.ackTimeoutMs);
        this.inflightChange.set(id, { conversationId, timer, done });
        return;
      }
      this.api.request<Message>(method, `/conversations/${enc(conversationId)}${path}`, body).then(
        (m) => done(m),
        (e) => done(null, e),
      );
    });
  }

  /** Changes whose answer will not come (the socket closed): they fail. */
  private failChanges(): void {
    for (const ch of this.inflightChange.values()) {
      this.t.clearTimeout(ch.timer);
      ch.done(null, { code: 'network' });
    }
    this.inflightChange.clear();
  }

  /** Called on input in the composer; sends `typing` at most every 2.5 s. */
  typed(conversationId: string): void {
    const last = this.lastTypingSent[conversationId] ?? 0;
    if (this.now() - last < TYPING_SEND_EVERY_MS) return;
    if (this.connection.send({ type: 'typing', conversationId })) this.lastTypingSent[conversationId] = this.now();
  }

  // ------------------------------------------------------------------- socket

  retryConnection(): void {
    this.connection.retry();
  }

  private onReady(): void {
    this.sendVisibility();
    this.catchUp();
    // Welcome frames sent while this page was away, and KeyPackages others claimed meanwhile.
    if (this.e2ee) {
      const e = this.e2ee;
      void e
        .fetchWelcomes()
        .then(() => e.topUp())
        .catch((err) => console.warn('e2ee: after reconnecting', err));
    }
    this.readSent = {};
    // Sends still waiting for an ack went out on the previous socket: their answer is lost.
    for (const f of this.inflight.values()) this.t.clearTimeout(f.timer);
    this.inflight.clear();
    // Edits, deletions and reactions sent on the previous socket: their answer is lost; the
    // sync above brings the outcome, if any.
    this.failChanges();
    // Messages still pending go out again with the same clientId: the server stores each
    // once (a retry of a stored one is answered with the stored message).
    for (const [cid, t] of Object.entries(this.threads.value)) {
      for (const p of t.pending) {
        if (p.status === 'pending') void this.dispatch(cid, p.clientId, p.body, p.replyTo?.id, p.attachments);
        else if (this.unanswered.has(p.clientId)) this.retry(cid, p.clientId);
      }
    }
    this.unanswered.clear();
  }

  /** Sends `sync` from the cursors (answered by `message` frames then `synced`) and refreshes the list. */
  private catchUp(): void {
    this.connection.send({ type: 'sync', cursors: { ...this.cursors } });
    // New conversations may have appeared while away.
    this.loadConversations()
      .then(() => {
        // Conversations new to this page start their cursor at their lastSeq (their
        // history is fetched when opened); known ones are covered by the sync above.
        const a = this.activeId.value;
        if (a && this.isReading(a)) this.markRead(a);
      })
      .catch(() => {});
  }

  onFrame(f: ServerFrame): void {
    switch (f.type) {
      case 'ack': {
        const hid = this.inflightHidden.get(f.id);
        if (hid) {
          this.t.clearTimeout(hid.timer);
          this.inflightHidden.delete(f.id);
          this.e2ee?.incomingMessage(f.message);
          hid.done();
          break;
        }
        const ch = this.inflightChange.get(f.id);
        if (ch) {
          this.t.clearTimeout(ch.timer);
          this.inflightChange.delete(f.id);
          ch.done(f.message);
          break;
        }
        const fl = this.inflight.get(f.id);
        if (fl) {
          this.t.clearTimeout(fl.timer);
          this.inflight.delete(f.id);
        }
        if (this.isEncrypted(f.message)) {
          this.incomingEncrypted(f.message);
          break;
        }
        this.ingest(f.message.conversationId, [f.message]);
        break;
      }
      case 'mls':
        this.e2ee?.incomingCommit(f);
        if (!this.e2ee) this.noteSeqs(f.conversationId, [f.seq]);
        break;
      case 'welcome':
        void this.e2ee?.fetchWelcomes().catch((e) => console.warn('e2ee: welcomes', e));
        break;
      case 'devices':
        this.e2ee?.devicesChanged(f.userId);
        break;
      case 'message': {
        const id = f.message.conversationId;
        if (this.isEncrypted(f.message)) {
          this.incomingEncrypted(f.message);
          break;
        }
        const before = this.conversations.value[id];
        const fresh = !!before && f.message.seq > before.lastSeq && !this.thread(id).messages.some((m) => m.id === f.message.id);
        this.ingest(id, [f.message]);
        const after = this.conversations.value[id];
        if (fresh && after && this.onIncoming) this.onIncoming(f.message, after);
        break;
      }
      case 'message_edited':
      case 'message_deleted':
      case 'reaction':
      case 'conversation_settings':
        if (f.type === 'message_deleted' && this.e2ee && this.conversations.value[f.conversationId]?.e2ee) void this.e2ee.forget(f.messageId);
        this.ingestEvents(f.conversationId, [f]);
        break;
      case 'synced':
        break;
      case 'resync':
        if (f.conversationId) {
          // A hole in one conversation: sync it from the cursor (docs/api.md, rule 3).
          const id = f.conversationId;
          this.connection.send({ type: 'sync', cursors: { [id]: this.cursors[id] ?? 0 } });
        } else {
          // The server may have missed events (its backplane was down): catch up.
          this.catchUp();
        }
        break;
      case 'typing': {
        if (f.userId === this.me.value?.id) break;
        const cur = this.typing.value[f.conversationId] ?? {};
        this.typing.value = { ...this.typing.value, [f.conversationId]: { ...cur, [f.userId]: this.now() + TYPING_SHOW_MS } };
        this.scheduleTypingSweep();
        break;
      }
      case 'presence': {
        this.presenceSeen[f.userId] = { n: ++this.presenceCount, online: f.status === 'online', lastSeen: f.lastSeen };
        const next: Record<string, Conversation> = {};
        let changed = false;
        for (const [id, c] of Object.entries(this.conversations.value)) {
          if (c.members.some((m) => m.id === f.userId)) {
            changed = true;
            next[id] = {
              ...c,
              members: c.members.map((m) => (m.id === f.userId ? { ...m, online: f.status === 'online', lastSeen: f.lastSeen ?? m.lastSeen } : m)),
            };
          } else next[id] = c;
        }
        if (changed) this.conversations.value = next;
        break;
      }
      case 'read': {
        if (f.userId === this.me.value?.id) {
          // Read on another of my devices.
          const c = this.conversations.value[f.conversationId];
          if (c && f.seq > c.readSeq) {
            this.conversations.value = {
              ...this.conversations.value,
              [f.conversationId]: { ...c, readSeq: f.seq, unread: f.seq >= c.lastSeq ? 0 : c.unread },
            };
          }
          break;
        }
        const cur = this.receipts.value[f.conversationId] ?? {};
        if ((cur[f.userId] ?? 0) >= f.seq) break;
        this.receipts.value = { ...this.receipts.value, [f.conversationId]: { ...cur, [f.userId]: f.seq } };
        break;
      }
      case 'conversation':
        this.upsertConversation(f.conversation);
        break;
      case 'user':
        if (f.user && typeof f.user.id === 'string' && typeof f.user.displayName === 'string') this.applyUser(f.user);
        break;
      case 'removed': {
        const c = this.conversations.value[f.conversationId];
        if (c?.e2ee && this.e2ee?.has(f.conversationId)) {
          // Kept, marked: what was read stays readable here, nothing new can be.
          void this.e2ee.markRemoved(f.conversationId);
          if (this.activeId.value === f.conversationId) this.notice.value = `You were removed from ${conversationTitle(c, this.me.value?.id ?? '')}.`;
          break;
        }
        if (c && this.activeId.value === f.conversationId) {
          this.notice.value = `You are no longer a member of ${conversationTitle(c, this.me.value?.id ?? '')}.`;
        }
        this.forget(f.conversationId);
        break;
      }
      case 'error': {
        const hid = f.id ? this.inflightHidden.get(f.id) : undefined;
        if (hid && f.id) {
          this.t.clearTimeout(hid.timer);
          this.inflightHidden.delete(f.id);
          hid.done(f);
          break;
        }
        const stale = f.id && f.code === 'stale_epoch' ? this.inflight.get(f.id) : undefined;
        if (stale && f.id && this.e2ee) {
          // The group moved on before my message: process the commits, encrypt again.
          this.t.clearTimeout(stale.timer);
          this.inflight.delete(f.id);
          const p = this.thread(stale.conversationId).pending.find((x) => x.clientId === stale.clientId);
          void this.e2ee.waitEpoch(stale.conversationId, f.epoch ?? 0).then(() => {
            if (p) void this.dispatch(stale.conversationId, p.clientId, p.body, p.replyTo?.id, p.attachments);
          });
          break;
        }
        const ch = f.id ? this.inflightChange.get(f.id) : undefined;
        if (ch && f.id) {
          this.t.clearTimeout(ch.timer);
          this.inflightChange.delete(f.id);
          ch.done(null, f);
          break;
        }
        const fl = f.id ? this.inflight.get(f.id) : undefined;
        if (fl && f.id) {
          this.t.clearTimeout(fl.timer);
          this.inflight.delete(f.id);
          this.setThread(fl.conversationId, (t) => failPending(t, fl.clientId, describeError(f, 'send')));
        } else if (f.code !== 'unauthorized') {
          this.notice.value = describeError(f);
        }
        break;
      }
      default:
        break;
    }
  }

  private scheduleTypingSweep(): void {
    if (this.typingTimer) return;
    this.typingTimer = this.t.setTimeout(() => {
      this.typingTimer = null;
      const now = this.now();
      const next: Record<string, Record<string, number>> = {};
      let left = false;
      for (const [cid, users] of Object.entries(this.typing.value)) {
        const keep: Record<string, number> = {};
        for (const [u, until] of Object.entries(users)) if (until > now) keep[u] = until;
        if (Object.keys(keep).length) {
          next[cid] = keep;
          left = true;
        }
      }
      this.typing.value = next;
      if (left) this.scheduleTypingSweep();
    }, 1000);
  }

  /** Members (other than me) who have read up to at least `seq`. */
  seenBy(conversationId: string, seq: number): string[] {
    const c = this.conversations.value[conversationId];
    if (!c) return [];
    const r = this.receipts.value[conversationId] ?? {};
    const me = this.me.value?.id;
    return c.members.filter((m) => m.id !== me && Math.max(r[m.id] ?? 0, m.readSeq ?? 0) >= seq).map((m) => m.id);
  }
}

function activity(c: Conversation): number {
  return Date.parse(c.lastMessage?.createdAt ?? c.lastActivity ?? c.createdAt) || 0;
}

function enc(s: string): string {
  return encodeURIComponent(s);
}

export function conversationTitle(c: Conversation, myId: string): string {
  if (c.kind === 'group') return c.title || 'Untitled group';
  const other = c.members.find((m) => m.id !== myId);
  return other ? other.displayName || other.username : 'Just you';
}

export { ApiError };
