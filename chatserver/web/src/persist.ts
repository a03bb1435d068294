import type { Pending } from './thread';
import type { Attachment, ReplyRef } from './types';

/** The part of the Web Storage API used here (localStorage in the browser, a Map in tests). */
export interface KeyValueStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/** An in-memory storage, for tests and for browsers where localStorage is unavailable. */
export class MemoryStorage implements KeyValueStorage {
  readonly data = new Map<string, string>();
  getItem(key: string): string | null {
    return this.data.get(key) ?? null;
  }
  setItem(key: string, value: string): void {
    this.data.set(key, value);
  }
  removeItem(key: string): void {
    this.data.delete(key);
  }
}

export function browserStorage(): KeyValueStorage {
  try {
    if (typeof localStorage !== 'undefined') {
      // Throws when storage is disabled (some privacy modes).
      localStorage.getItem('parley:probe');
      return localStorage;
    }
  } catch {
    /* fall through */
  }
  return new MemoryStorage();
}

const PREFIX = 'parley:v1:';
const MAX_DRAFT_CHARS = 20_000;

/**
 * What survives a reload, per signed-in user: unsent drafts per conversation and messages
 * written but not yet confirmed by the server (with their clientId, so sending them again
 * cannot store them twice). Every change reads, changes and writes back one entry, so two
 * tabs of the same person do not undo each other's changes to other entries.
 * Nothing here is trusted: what is read is checked and bad entries are dropped.
 */
export class LocalState {
  constructor(
    private readonly storage: KeyValueStorage,
    private readonly userId: string,
  ) {}

  private key(kind: 'drafts' | 'pending'): string {
    return `${PREFIX}${this.userId}:${kind}`;
  }

  private read(kind: 'drafts' | 'pending'): Record<string, unknown> {
    try {
      const raw = this.storage.getItem(this.key(kind));
      if (!raw) return {};
      const v = JSON.parse(raw) as unknown;
      return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
    } catch {
      return {};
    }
  }

  private write(kind: 'drafts' | 'pending', v: Record<string, unknown>): void {
    try {
      if (Object.keys(v).length === 0) this.storage.removeItem(this.key(kind));
      else this.storage.setItem(this.key(kind), JSON.stringify(v));
    } catch {
      /* storage full or disabled: the state lives in memory only */
    }
  }

  drafts(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [id, text] of Object.entries(this.read('drafts'))) {
      if (typeof text === 'string' && text !== '') out[id] = text;
    }
    return out;
  }

  /** Saves (or, when empty, forgets) the draft of one conversation. */
  setDraft(conversationId: string, text: string): void {
    const d = this.read('drafts');
    if (text === '' || text.length > MAX_DRAFT_CHARS) {
      if (!(conversationId in d)) return;
      delete d[conversationId];
    } else {
      if (d[conversationId] === text) return;
      d[conversationId] = text;
    }
    this.write('drafts', d);
  }

  /** Stored unconfirmed messages, oldest first. */
  pending(): Pending[] {
    const out: Pending[] = [];
    for (const [clientId, v] of Object.entries(this.read('pending'))) {
      const p = v as Partial<Pending> | null;
      if (
        !p ||
        typeof p !== 'object' ||
        p.clientId !== clientId ||
        !/^[A-Za-z0-9_-]{1,64}$/.test(clientId) ||
        typeof p.conversationId !== 'string' ||
        typeof p.body !== 'string' ||
        typeof p.createdAt !== 'string' ||
        (p.status !== 'pending' && p.status !== 'failed') ||
        // Files it carries that cannot be read back: sending it without them would be wrong.
        (p.attachments !== undefined && !(Array.isArray(p.attachments) && p.attachments.length <= 10 && p.attachments.every(isAttachment)))
      ) {
        continue;
      }
      out.push({
        clientId,
        conversationId: p.conversationId,
        body: p.body,
        createdAt: p.createdAt,
        status: p.status,
        ...(typeof p.error === 'string' ? { error: p.error } : {}),
        ...(isReplyRef(p.replyTo) ? { replyTo: p.replyTo } : {}),
        ...(p.attachments?.length ? { attachments: p.attachments } : {}),
      });
    }
    return out.sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : 0));
  }

  putPending(p: Pending): void {
    const all = this.read('pending');
    all[p.clientId] = { ...p };
    this.write('pending', all);
  }

  removePending(clientIds: Iterable<string>): void {
    const all = this.read('pending');
    let changed = false;
    for (const id of clientIds) {
      if (id in all) {
        delete all[id];
        changed = true;
      }
    }
    if (changed) this.write('pending', all);
  }

  /** Sign-out: nothing of this person stays in the browser. */
  clear(): void {
    try {
      this.storage.removeItem(this.key('drafts'));
      this.storage.removeItem(this.key('pending'));
    } catch {
      /* ignore */
    }
  }
}

function isAttachment(v: unknown): v is Attachment {
  const a = v as Partial<Attachment> | null;
  return !!a && typeof a === 'object' && typeof a.id === 'string' && typeof a.name === 'string' && typeof a.contentType === 'string' && typeof a.size === 'number';
}

function isReplyRef(v: unknown): v is ReplyRef {
  const r = v as Partial<ReplyRef> | null;
  return !!r && typeof r === 'object' && typeof r.id === 'string' && typeof r.seq === 'number' && typeof r.senderId === 'string' && typeof r.excerpt === 'string' && typeof r.deleted === 'boolean';
}
