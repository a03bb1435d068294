// This browser as an MLS client of Parley's delivery service (THE CONTRACT in
// docs/security.md, issue 17): its device and KeyPackages, its groups (one per
// encrypted conversation), and the processing of commits and application messages in
// seq order. UI-free: the store calls it and gets plaintext back through `Host`.

import { signal } from '@preact/signals';
import { withLock } from '../api';
import type { ClientState, KeyPackage, PrivateKeyPackage } from 'ts-mls';
import { mentionParts } from '../notify';
import type { Conversation, Message, ReplyRef } from '../types';
import { Vault, type KV } from './keystore';
import * as mls from './mls';
import { decide, enqueue, commitJitter, type Item } from './order';
import { decodePayload, deviceIdentity, encodePayload, fromBase64, parseIdentity, sealedAttachment, toBase64, type Payload, type SealedFile } from './payload';
import { diffMembers, emptyDiff, type Device as MemberDevice } from './reconcile';
import { deviceSetHash } from './safety';

/** Below this many stored KeyPackages the device uploads more (THE CONTRACT). */
export const KEYPACKAGE_LOW = 10;
const KEYPACKAGE_BATCH = 20;
const DAY_MS = 86_400_000;
/** KeyPackages are made for 90 days (mls.ts); their private halves are kept as long. */
const KEYPACKAGE_MAX_AGE_MS = 90 * DAY_MS;
const LAST_RESORT_RENEW_MS = 60 * DAY_MS;

export interface ServerDevice {
  id: string;
  name: string;
  signatureKey: string;
  createdAt: string;
}

export interface Api {
  request<T = unknown>(method: string, path: string, body?: unknown): Promise<T>;
}

/** The store's side: where plaintext and consumed seqs go. */
export interface Host {
  conversation(id: string): Conversation | undefined;
  /** A message readable (or shown as unreadable) in the thread. */
  deliver(conversationId: string, m: Message): void;
  /** An edit of `target` by its author. */
  edited(conversationId: string, target: Message | null, targetId: string, text: string, at: string): void;
  /** Reactions of `targetId` are now `reactions` (emoji -> user ids). */
  reacted(conversationId: string, targetId: string, emoji: string, userId: string, add: boolean, counts: Array<{ emoji: string; count: number }>): void;
  /** A seq consumed without a message to show (a commit, an edit, a reaction). */
  consumed(conversationId: string, seq: number): void;
  /** Catch a conversation up from this seq (after joining it, or when a commit is missing). */
  syncFrom(conversationId: string, seq: number): void;
}

/** What is kept of a decrypted message (sealed in IndexedDB). */
export interface Plain {
  seq: number;
  senderId: string;
  /** hidden: an edit or reaction (never shown); deleted: a text deleted since (its plaintext gone). */
  kind: 'text' | 'hidden' | 'undecryptable' | 'deleted';
  text?: string;
  replyTo?: string;
  attachments?: SealedFile[];
  editedAt?: string;
  reactions?: Record<string, string[]>;
}

interface GroupRec {
  state: ClientState;
  /** The last seq processed in order (commit or message). */
  processedSeq: number;
  /** The seq of the commit whose Welcome brought this device in (0: it created the group). */
  joinSeq: number;
  removed: boolean;
  /** A commit could not be applied: this device is out of step with the group for good. */
  stuck?: boolean;
}

interface QItem extends Item {
  bytes: Uint8Array;
  message?: Message;
  senderId: string;
}

interface ContactRec {
  /** Device-set hash when first seen, or accepted since. */
  seen: string;
  /** Device-set hash when verified (absent: never verified). */
  verified?: string;
}

export interface Contact {
  userId: string;
  devices: ServerDevice[];
  verified: boolean;
  /** The contact's devices changed since they were verified (or first seen). */
  changed: boolean;
}

function enc(s: string): string {
  return encodeURIComponent(s);
}

/** A commit refused as stale_epoch: the server's current epoch (ApiError.epoch; -1 when not given). Else null. */
function isStale(e: unknown): number | null {
  const x = e as { code?: string; epoch?: number } | undefined;
  if (x?.code !== 'stale_epoch') return null;
  return typeof x.epoch === 'number' ? x.epoch : -1;
}

export class E2ee {
  readonly vault: Vault;
  deviceId: string | null = null;
  deviceName = '';
  signatureKey: Uint8Array | null = null;
  private ctx: mls.Ctx | null = null;
  private groups = new Map<string, GroupRec>();
  private revs = new Map<string, string>();
  private queues = new Map<string, QItem[]>();
  private chains = new Map<string, Promise<unknown>>();
  private plain = new Map<string, Plain>();
  private outbox = new Map<string, Payload>();
  private waiters = new Map<string, Array<{ epoch: number; done: () => void }>>();
  private devicesCache = new Map<string, Promise<ServerDevice[]>>();
  private reconcileTimers = new Map<string, unknown>();
  private missingTries = new Map<string, number>();
  private syncAsked = new Map<string, number>();
  private welcoming: Promise<void> | null = null;
  private welcomingNext: Promise<void> | null = null;
  private contacts: Record<string, ContactRec> = {};
  /** Bumped whenever something the UI shows changed (joined, removed, devices, contacts). */
  readonly version = signal(0);
  random: () => number = Math.random;
  stopped = false;

  constructor(
    readonly api: Api,
    readonly userId: string,
    kv: KV,
    readonly host: Host,
  ) {
    this.vault = new Vault(kv, `u:${userId}:`);
  }

  private bump(): void {
    this.version.value++;
  }

  // ------------------------------------------------------------------ device

  /**
   * Loads (or creates and registers) this browser's device, tops up its KeyPackages and
   * joins the conversations whose Welcomes wait for it.
   */
  async start(deviceName = defaultDeviceName()): Promise<void> {
    await this.vault.init();
    const saved = await this.vault.getPlain<{ id: string; name: string; signer: mls.Signer }>('device');
    let signer = saved?.signer;
    if (saved) {
      // A device removed from another device (a lost one) starts over as a new device.
      const mine = await this.devicesOf(this.userId, true).catch(() => null);
      if (mine && !mine.some((d) => d.id === saved.id)) {
        await this.wipe();
        signer = undefined;
      } else {
        this.deviceId = saved.id;
        this.deviceName = saved.name;
      }
    }
    if (!this.deviceId || !signer) {
      signer = await mls.newSigner();
      const d = await this.api.request<ServerDevice>('POST', '/devices', { name: deviceName, signatureKey: toBase64(signer.publicKey) });
      this.deviceId = d.id;
      this.deviceName = d.name;
      await this.vault.putPlain('device', { id: d.id, name: d.name, signer });
      this.devicesCache.delete(this.userId);
    }
    this.signatureKey = signer.publicKey;
    this.ctx = await mls.context(signer, deviceIdentity(this.userId, this.deviceId));
    // Groups before plaintext: another tab keeps what it decrypted before it saves the
    // group, so what is read next covers every seq the groups say was processed.
    for (const [k] of await this.vault.kv.entries(`u:${this.userId}:group:`)) {
      const id = k.slice(`u:${this.userId}:group:`.length);
      const g = await this.loadGroup(id);
      if (g) this.groups.set(id, g);
    }
    for (const [k, v] of await this.vault.entriesJSON<Plain>('plain:')) this.plain.set(k.slice('plain:'.length), v);
    for (const [k, v] of await this.vault.entriesJSON<Payload>('out:')) this.outbox.set(k.slice('out:'.length), v);
    this.contacts = (await this.vault.getJSON<Record<string, ContactRec>>('contacts')) ?? {};
    await this.topUp();
    await this.fetchWelcomes();
    this.bump();
  }

  /** Forgets every key of this user in this browser (the device was removed elsewhere). */
  private async wipe(): Promise<void> {
    for (const [k] of await this.vault.kv.entries(`u:${this.userId}:`)) if (!k.endsWith(':wrap')) await this.vault.kv.del(k);
    this.groups.clear();
    this.plain.clear();
    this.outbox.clear();
    this.deviceId = null;
  }

  /** KeyPackages: more when the server holds fewer than KEYPACKAGE_LOW, and one last-resort package. */
  async topUp(now = Date.now()): Promise<void> {
    const ctx = this.ctx!;
    const st = await this.api.request<{ count: number; lastResort: boolean }>('GET', `/devices/${enc(this.deviceId!)}/keypackages`);
    // KeyPackages live 90 days: the last-resort one is replaced after 60, and private
    // halves of packages past their lifetime (claimed by a commit that lost, or never
    // claimed) are forgotten.
    let lastResortOld = true;
    for (const [k, r] of await this.vault.entriesJSON<{ lastResort: boolean; created?: number }>('kp:')) {
      const age = now - (r.created ?? now);
      if (age > KEYPACKAGE_MAX_AGE_MS) await this.vault.del(k);
      else if (r.lastResort && age <= LAST_RESORT_RENEW_MS) lastResortOld = false;
    }
    if (st.count >= KEYPACKAGE_LOW && st.lastResort && !lastResortOld) return;
    const fresh: mls.NewKeyPackage[] = [];
    for (let i = st.count; i < KEYPACKAGE_BATCH; i++) fresh.push(await mls.newKeyPackage(ctx, false, now));
    const last = st.lastResort && !lastResortOld ? null : await mls.newKeyPackage(ctx, true, now);
    for (const kp of [...fresh, ...(last ? [last] : [])]) await this.saveKeyPackage(kp, kp === last, now);
    await this.api.request('POST', `/devices/${enc(this.deviceId!)}/keypackages`, {
      keyPackages: fresh.map((k) => toBase64(k.message)),
      ...(last ? { lastResort: toBase64(last.message) } : {}),
    });
  }

  private async saveKeyPackage(kp: mls.NewKeyPackage, lastResort: boolean, now: number): Promise<void> {
    await this.vault.putJSON(`kp:${kp.ref}`, {
      pub: toBase64(mls.encodeKeyPackageBytes(kp.publicPackage)),
      init: toBase64(kp.privatePackage.initPrivateKey),
      hpke: toBase64(kp.privatePackage.hpkePrivateKey),
      lastResort,
      created: now,
    });
  }

  private async keyPackage(ref: string): Promise<{ pub: KeyPackage; priv: PrivateKeyPackage; lastResort: boolean } | null> {
    const r = await this.vault.getJSON<{ pub: string; init: string; hpke: string; lastResort: boolean }>(`kp:${ref}`);
    if (!r) return null;
    return {
      pub: mls.decodeKeyPackageBytes(fromBase64(r.pub)),
      priv: { initPrivateKey: fromBase64(r.init), hpkePrivateKey: fromBase64(r.hpke), signaturePrivateKey: this.ctx!.signer.handle },
      lastResort: r.lastResort,
    };
  }

  /** A user's live devices (cached until a `devices` frame about them). */
  devicesOf(userId: string, fresh = false): Promise<ServerDevice[]> {
    if (fresh) this.devicesCache.delete(userId);
    let p = this.devicesCache.get(userId);
    if (!p) {
      p = this.api.request<{ devices: ServerDevice[] }>('GET', `/users/${enc(userId)}/devices`).then((r) => r.devices);
      p.catch(() => this.devicesCache.delete(userId));
      this.devicesCache.set(userId, p);
    }
    return p;
  }

  /** A `devices` frame: that user's devices changed; every shared encrypted conversation is checked. */
  devicesChanged(userId: string): void {
    this.devicesCache.delete(userId);
    if (userId === this.userId) void this.devicesOf(userId, true).then((ds) => {
      if (this.deviceId && !ds.some((d) => d.id === this.deviceId)) this.bump();
    }, () => {});
    for (const id of this.groups.keys()) {
      const c = this.host.conversation(id);
      if (c?.members.some((m) => m.id === userId)) this.scheduleReconcile(id);
    }
    this.bump();
  }

  async removeDevice(deviceId: string): Promise<void> {
    await this.api.request('DELETE', `/devices/${enc(deviceId)}`);
    this.devicesChanged(this.userId);
  }

  // ----------------------------------------------------------------- groups

  private async loadGroup(id: string): Promise<GroupRec | null> {
    const r = await this.vault.getJSON<{ state: string; processedSeq: number; joinSeq: number; removed: boolean; stuck?: boolean }>(`group:${id}`);
    if (!r) return null;
    return { state: mls.loadState(fromBase64(r.state)), processedSeq: r.processedSeq, joinSeq: r.joinSeq, removed: r.removed, ...(r.stuck ? { stuck: true } : {}) };
  }

  private async saveGroup(id: string, g: GroupRec): Promise<void> {
    this.groups.set(id, g);
    await this.vault.putJSON(`group:${id}`, { state: toBase64(mls.saveState(g.state)), processedSeq: g.processedSeq, joinSeq: g.joinSeq, removed: g.removed, stuck: !!g.stuck });
    const rev = mls.hex(crypto.getRandomValues(new Uint8Array(12)));
    this.revs.set(id, rev);
    await this.vault.putPlain(`rev:${id}`, rev);
  }

  /**
   * Another tab of this browser (same device, same groups) may have moved the group on:
   * the stored state is taken before every step (under the Web Lock), never an older copy,
   * so two tabs never encrypt with the same key generation.
   */
  private async refresh(id: string): Promise<void> {
    const rev = await this.vault.getPlain<string>(`rev:${id}`);
    if (rev === undefined || rev === this.revs.get(id)) return;
    const g = await this.loadGroup(id);
    if (g) this.groups.set(id, g);
    this.revs.set(id, rev);
  }

  /**
   * Runs f after everything queued for the conversation (one step at a time per group),
   * under a Web Lock: tabs of one browser share the device and its groups.
   */
  private serial<T>(id: string, f: () => Promise<T>): Promise<T> {
    const prev = this.chains.get(id) ?? Promise.resolve();
    const g = async () => {
      await this.refresh(id);
      return f();
    };
    const run = prev.then(
      () => withLock(`parley-e2ee:${this.userId}:${id}`, g),
      () => withLock(`parley-e2ee:${this.userId}:${id}`, g),
    );
    this.chains.set(
      id,
      run.catch(() => undefined),
    );
    return run;
  }

  has(id: string): boolean {
    return this.groups.has(id);
  }

  /** Where the store's cursor starts for an encrypted conversation: after the last seq processed. */
  cursor(id: string): number | undefined {
    return this.groups.get(id)?.processedSeq;
  }

  info(id: string): { joined: boolean; joinSeq: number; removed: boolean; stuck: boolean; epoch: number } | null {
    const g = this.groups.get(id);
    if (!g) return null;
    return { joined: true, joinSeq: g.joinSeq, removed: g.removed, stuck: !!g.stuck, epoch: mls.epochOf(g.state) };
  }

  /** The credential identities (`<user>:<device>`) of the group's members, as this device holds them. */
  memberDevices(id: string): string[] {
    const g = this.groups.get(id);
    return g ? mls.leaves(g.state).map((l) => l.identity) : [];
  }

  /**
   * A conversation I just created end-to-end encrypted: epoch 0 with this device alone,
   * then one commit adding every other device of its members.
   */
  async created(c: Conversation): Promise<void> {
    await this.serial(c.id, async () => {
      if (this.groups.has(c.id)) return;
      const kp = await mls.newKeyPackage(this.ctx!);
      const state = await mls.createGroup(this.ctx!, c.id, kp);
      await this.saveGroup(c.id, { state, processedSeq: c.lastSeq, joinSeq: 0, removed: false });
    });
    this.bump();
    await this.reconcile(c.id, { now: true });
  }

  /**
   * GET welcomes: join each conversation, then read it from after the commit that added me.
   * One request at a time: calls while one runs (a `welcome` frame, every message of a
   * conversation not joined yet) share a single request made after it.
   */
  fetchWelcomes(): Promise<void> {
    if (!this.welcoming) {
      this.welcoming = this.readWelcomes().finally(() => {
        this.welcoming = null;
      });
      return this.welcoming;
    }
    // The running request may have been answered before what this call is about.
    this.welcomingNext ??= this.welcoming
      .catch(() => undefined)
      .then(() => {
        this.welcomingNext = null;
        return this.fetchWelcomes();
      });
    return this.welcomingNext;
  }

  private async readWelcomes(): Promise<void> {
    if (!this.deviceId) return;
    const { welcomes } = await this.api.request<{ welcomes: Array<{ conversationId: string; seq: number; epoch: number; welcome: string }> }>('GET', `/devices/${enc(this.deviceId)}/welcomes`);
    for (const w of welcomes) {
      await this.serial(w.conversationId, async () => {
        const bytes = fromBase64(w.welcome);
        const existing = this.groups.get(w.conversationId);
        if (existing && !existing.removed && mls.epochOf(existing.state) >= w.epoch) return;
        for (const ref of mls.welcomeRefs(bytes)) {
          const kp = await this.keyPackage(ref);
          if (!kp) continue;
          const state = await mls.join(this.ctx!, bytes, kp.pub, kp.priv);
          await this.saveGroup(w.conversationId, { state, processedSeq: w.seq, joinSeq: w.seq, removed: false });
          if (!kp.lastResort) await this.vault.del(`kp:${ref}`);
          return;
        }
      }).catch((e) => console.warn('e2ee: welcome for', w.conversationId, 'could not be processed', e));
      await this.api.request('DELETE', `/devices/${enc(this.deviceId)}/welcomes/${enc(w.conversationId)}`).catch(() => undefined);
      if (this.groups.has(w.conversationId)) {
        this.host.syncFrom(w.conversationId, w.seq);
        void this.pump(w.conversationId);
      }
    }
    if (welcomes.length) {
      this.bump();
      void this.topUp().catch(() => undefined);
    }
  }

  /** The server removed me from a conversation (or my device): nothing after this can be read. */
  async markRemoved(id: string): Promise<void> {
    await this.serial(id, async () => {
      const g = this.groups.get(id);
      if (g && !g.removed) await this.saveGroup(id, { ...g, removed: true });
    });
    this.bump();
  }

  // --------------------------------------------------------------- incoming

  /** A message of an encrypted conversation (live, ack, sync): queued and processed in seq order. */
  incomingMessage(m: Message): void {
    const known = this.plain.get(m.id);
    if (known) {
      this.host.deliver(m.conversationId, this.decorate(m, known));
      return;
    }
    if (!m.ciphertext) {
      if (m.deleted) this.host.deliver(m.conversationId, m);
      return;
    }
    let epoch: number;
    const bytes = fromBase64(m.ciphertext);
    try {
      epoch = mls.header(bytes).epoch;
    } catch {
      this.host.deliver(m.conversationId, { ...m, body: '', undecryptable: true });
      return;
    }
    this.enqueue(m.conversationId, { seq: m.seq, epoch, kind: 'message', bytes, message: m, senderId: m.senderId });
  }

  /** A commit (`mls` frame). */
  incomingCommit(f: { conversationId: string; seq: number; epoch: number; senderId: string; commit: string }): void {
    const bytes = fromBase64(f.commit);
    let epoch: number;
    try {
      // The epoch the commit was made in, from its own header (the frame's `epoch` is the one after it).
      epoch = mls.header(bytes).epoch;
    } catch {
      epoch = f.epoch - 1;
    }
    this.enqueue(f.conversationId, { seq: f.seq, epoch, kind: 'commit', bytes, senderId: f.senderId });
  }

  private enqueue(id: string, it: QItem): void {
    this.queues.set(id, enqueue(this.queues.get(id) ?? [], it));
    void this.pump(id);
  }

  private pump(id: string): Promise<void> {
    return this.serial(id, async () => {
      for (;;) {
        const g = this.groups.get(id);
        const q = this.queues.get(id) ?? [];
        if (!g || q.length === 0) return;
        // Removed (or out of step): nothing waits for a commit that will never apply; what
        // comes is consumed, messages shown unreadable, so the cursor and the thread go on.
        const d =
          g.removed && q[0].seq > g.processedSeq ? ({ action: 'process', item: q[0] } as const) : decide(q, mls.epochOf(g.state), g.processedSeq);
        if (d.action === 'wait') {
          this.askSync(id, g.processedSeq);
          return;
        }
        this.queues.set(id, q.slice(1));
        const it = d.item;
        if (d.action === 'drop') {
          // Processed already (here, or by another tab): a text is shown from what was kept.
          const m = it.message;
          const p = m && (this.plain.get(m.id) ?? (await this.vault.getJSON<Plain>(`plain:${m.id}`)));
          if (m && p) this.plain.set(m.id, p);
          if (m && p && p.kind !== 'hidden') this.host.deliver(id, this.decorate(m, p));
          else this.host.consumed(id, it.seq);
          continue;
        }
        await this.step(id, g, it);
        this.resolveWaiters(id);
      }
    });
  }

  private askSync(id: string, from: number): void {
    const now = Date.now();
    if (now - (this.syncAsked.get(id) ?? 0) < 3000) return;
    this.syncAsked.set(id, now);
    this.host.syncFrom(id, from);
  }

  private async step(id: string, g: GroupRec, it: QItem): Promise<void> {
    if (it.kind === 'commit') {
      if (g.removed) {
        await this.saveGroup(id, { ...g, processedSeq: it.seq });
        this.host.consumed(id, it.seq);
        return;
      }
      try {
        const r = await mls.process(this.ctx!, g.state, it.bytes);
        await this.saveGroup(id, { ...g, state: r.state, processedSeq: it.seq, removed: r.kind === 'commit' && r.removedMe });
      } catch (e) {
        // A commit this device cannot apply leaves it behind for good: it stops waiting
        // for epochs it cannot reach and says so (another device can remove it, and a
        // fresh sign-in on a new device joins again).
        console.warn('e2ee: commit', it.seq, 'in', id, 'could not be applied', e);
        await this.saveGroup(id, { ...g, processedSeq: it.seq, removed: true, stuck: true });
      }
      this.host.consumed(id, it.seq);
      this.bump(); // a new epoch (removed, or out of step): what the UI shows of the group changed
      this.scheduleReconcile(id);
      return;
    }
    const m = it.message!;
    // Mine from this device: kept when sent (by this tab, or another tab of the browser,
    // which shares the device: its copy is in IndexedDB).
    const own = m.senderId === this.userId ? (this.outbox.get(m.clientId) ?? (await this.vault.getJSON<Payload>(`out:${m.clientId}`))) : undefined;
    if (own) {
      await this.apply(id, m, own);
      this.outbox.delete(m.clientId);
      await this.vault.del(`out:${m.clientId}`);
      await this.saveGroup(id, { ...g, processedSeq: it.seq });
      return;
    }
    let payload: Payload | null = null;
    let state = g.state;
    try {
      const r = await mls.process(this.ctx!, g.state, it.bytes);
      state = r.state;
      if (r.kind === 'application') payload = decodePayload(r.plaintext);
    } catch (e) {
      console.warn('e2ee: message', it.seq, 'in', id, 'could not be decrypted', e);
    }
    await this.saveGroup(id, { ...g, state, processedSeq: it.seq });
    if (!payload) {
      const p: Plain = { seq: m.seq, senderId: m.senderId, kind: 'undecryptable' };
      await this.remember(m.id, p);
      this.host.deliver(id, this.decorate(m, p));
      return;
    }
    await this.apply(id, m, payload);
  }

  private async remember(id: string, p: Plain): Promise<void> {
    this.plain.set(id, p);
    await this.vault.putJSON(`plain:${id}`, p);
  }

  /** Applies a readable payload: a message to show, or an edit or reaction of one. */
  private async apply(id: string, m: Message, p: Payload): Promise<void> {
    if (p.type === 'text') {
      const plain: Plain = { seq: m.seq, senderId: m.senderId, kind: 'text', text: p.text, ...(p.replyTo ? { replyTo: p.replyTo } : {}), ...(p.attachments ? { attachments: p.attachments } : {}) };
      await this.remember(m.id, plain);
      this.host.deliver(id, this.decorate(m, plain));
      return;
    }
    await this.remember(m.id, { seq: m.seq, senderId: m.senderId, kind: 'hidden' });
    const target = this.plain.get(p.target);
    if (p.type === 'edit') {
      // Only the author may edit: an edit of someone else's message is ignored.
      if (target && target.kind === 'text' && target.senderId === m.senderId) {
        const next = { ...target, text: p.text, editedAt: m.createdAt };
        await this.remember(p.target, next);
        this.host.edited(id, null, p.target, p.text, m.createdAt);
      }
    } else if (target && target.kind === 'text') {
      const r = { ...(target.reactions ?? {}) };
      const users = (r[p.emoji] ?? []).filter((u) => u !== m.senderId);
      if (p.add) users.push(m.senderId);
      if (users.length) r[p.emoji] = users;
      else delete r[p.emoji];
      await this.remember(p.target, { ...target, reactions: r });
      this.host.reacted(id, p.target, p.emoji, m.senderId, p.add, Object.entries(r).map(([emoji, u]) => ({ emoji, count: u.length })));
    }
    this.host.consumed(id, m.seq);
  }

  /** A message deleted for everyone (or expired): its kept plaintext goes too. */
  async forget(messageId: string): Promise<void> {
    const p = this.plain.get(messageId);
    if (!p || p.kind !== 'text') return;
    await this.remember(messageId, { seq: p.seq, senderId: p.senderId, kind: 'deleted' });
  }

  /** The message as the thread shows it: its text and files from the plaintext kept. */
  decorate(m: Message, p: Plain): Message {
    const { ciphertext: _c, ...rest } = m;
    if (m.deleted) return { ...rest, body: '' };
    if (p.kind !== 'text') return { ...rest, body: '', undecryptable: true };
    const out: Message = { ...rest, body: p.text ?? '' };
    if (p.editedAt) out.editedAt = p.editedAt;
    const mentions = this.mentionsIn(m.conversationId, out.body);
    if (mentions.length) out.mentions = mentions;
    if (p.attachments?.length) out.attachments = p.attachments.map(sealedAttachment);
    if (p.replyTo) {
      const t = this.plain.get(p.replyTo);
      const ref: ReplyRef = { id: p.replyTo, seq: t?.seq ?? 0, senderId: t?.senderId ?? '', excerpt: t?.kind === 'text' ? (t.text ?? '').slice(0, 100) : '', deleted: !t };
      out.replyTo = ref;
    }
    if (p.reactions) {
      out.reactions = Object.entries(p.reactions).map(([emoji, users]) => ({ emoji, count: users.length, me: users.includes(this.userId) }));
    }
    return out;
  }

  /**
   * Who a text mentions (@username of a member), by the server's rule, found here: the
   * server cannot read encrypted text, so the highlight and "@ mentioned you" come from
   * the plaintext.
   */
  private mentionsIn(conversationId: string, text: string): string[] {
    if (!text.includes('@')) return [];
    const c = this.host.conversation(conversationId);
    if (!c) return [];
    const by = new Map(c.members.map((x) => [x.username.toLowerCase(), x.id]));
    const ids = new Set<string>();
    for (const part of mentionParts(text, by, [...by.values()], this.userId)) if (typeof part !== 'string') ids.add(part.id);
    return [...ids];
  }

  /** Reads from IndexedDB the plaintext another tab kept for these messages since this one started. */
  async loadKept(ms: readonly Message[]): Promise<void> {
    // Groups before plaintext, as in start(): another tab keeps what it decrypted before it
    // saves the group, so the plaintext read next covers every seq the groups say was
    // processed (read the other way round, a message processed meanwhile by another tab
    // had a processed seq but no plaintext here, and showed as not decryptable).
    for (const id of new Set(ms.map((m) => m.conversationId))) await this.refreshNow(id);
    // A page of history: its reads go to IndexedDB together, not one after another.
    await Promise.all(
      ms
        .filter((m) => m.ciphertext && !this.plain.has(m.id))
        .map(async (m) => {
          const p = await this.vault.getJSON<Plain>(`plain:${m.id}`);
          if (p) this.plain.set(m.id, p);
        }),
    );
  }

  /** The stored group, when another tab moved it on (its processed seq decides what history shows). */
  private refreshNow(id: string): Promise<void> {
    return this.serial(id, async () => undefined);
  }

  /**
   * A message from history (GET …/messages): its kept plaintext, or, when none, why not:
   * sent before this device joined, or not readable. Null: not processed yet (it comes in
   * order through the sync), or an edit or reaction (not shown).
   */
  fromHistory(m: Message): Message | null {
    const { ciphertext: _c, ...rest } = m;
    const p = this.plain.get(m.id);
    if (p?.kind === 'hidden') return null;
    if (m.deleted) return { ...rest, body: '' };
    if (p) return this.decorate(m, p);
    const g = this.groups.get(m.conversationId);
    if (g && m.seq > g.processedSeq) return null;
    if (!g || m.seq <= g.joinSeq) return { ...rest, body: '', undecryptable: true, beforeJoin: true };
    return { ...rest, body: '', undecryptable: true };
  }

  /** The conversation list's last message: its text when known here. */
  preview(m: Message | null): Message | null {
    if (!m || !m.ciphertext) return m;
    const p = this.plain.get(m.id);
    if (p && p.kind === 'text') return this.decorate(m, p);
    const { ciphertext: _c, ...rest } = m;
    return { ...rest, body: '', undecryptable: !m.deleted };
  }

  // ----------------------------------------------------------------- sending

  /** Keeps what I send (I cannot decrypt my own MLS messages) until the server stores it. */
  async prepare(clientId: string, p: Payload): Promise<void> {
    this.outbox.set(clientId, p);
    await this.vault.putJSON(`out:${clientId}`, p);
  }

  outgoing(clientId: string): Payload | undefined {
    return this.outbox.get(clientId);
  }

  /** Encrypts a payload for the conversation at its current epoch: the base64 MLSMessage. */
  encrypt(id: string, p: Payload): Promise<string> {
    return this.serial(id, async () => {
      const g = this.groups.get(id);
      if (!g) throw Object.assign(new Error('This device has not joined this conversation yet.'), { code: 'e2ee_not_joined' });
      if (g.removed || !mls.active(g.state)) throw Object.assign(new Error('You were removed from this conversation.'), { code: 'e2ee_removed' });
      const r = await mls.encrypt(this.ctx!, g.state, encodePayload(p));
      await this.saveGroup(id, { ...g, state: r.state });
      return toBase64(r.message);
    });
  }

  /** Resolves once the group reached `epoch` (the commits before it processed), or after a while. */
  waitEpoch(id: string, epoch: number, timeoutMs = 10_000): Promise<void> {
    const g = this.groups.get(id);
    if (!g || mls.epochOf(g.state) >= epoch) return Promise.resolve();
    this.askSync(id, g.processedSeq);
    return new Promise((resolve) => {
      const list = this.waiters.get(id) ?? [];
      const w = { epoch, done: resolve };
      list.push(w);
      this.waiters.set(id, list);
      setTimeout(resolve, timeoutMs);
    });
  }

  private resolveWaiters(id: string): void {
    const g = this.groups.get(id);
    const list = this.waiters.get(id);
    if (!g || !list) return;
    const e = mls.epochOf(g.state);
    const keep = list.filter((w) => {
      if (w.epoch > e) return true;
      w.done();
      return false;
    });
    this.waiters.set(id, keep);
  }

  // ---------------------------------------------------------- membership

  /** Schedules a reconciliation after a jittered delay (several devices may see the same difference). */
  scheduleReconcile(id: string): void {
    if (this.stopped || this.reconcileTimers.has(id)) return;
    const t = setTimeout(() => {
      this.reconcileTimers.delete(id);
      void this.reconcile(id).catch((e) => console.warn('e2ee: reconciling', id, e));
    }, commitJitter(this.random));
    this.reconcileTimers.set(id, t);
  }

  /**
   * Makes the group's members the live devices of the conversation's members: one commit
   * with the adds and removes (and `add`/`remove` users for the server's membership when
   * given). On stale_epoch: process the commits that won, then look again.
   */
  async reconcile(id: string, o: { now?: boolean; addUsers?: string[]; removeUsers?: string[] } = {}): Promise<void> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const g = this.groups.get(id);
      const c = this.host.conversation(id);
      if (!g || g.removed || !c || !mls.active(g.state)) return;
      const members = [...new Set([...c.members.map((m) => m.id), ...(o.addUsers ?? [])])].filter((u) => !(o.removeUsers ?? []).includes(u));
      const look = async (fresh: ReadonlySet<string>) => {
        const devices: MemberDevice[] = [];
        const known = new Set<string>();
        // A few at a time: a large group's lists are mostly cached.
        for (let i = 0; i < members.length; i += 8) {
          await Promise.all(
            members.slice(i, i + 8).map(async (u) => {
              try {
                for (const d of await this.devicesOf(u, fresh.has(u))) devices.push({ userId: u, deviceId: d.id });
                known.add(u);
              } catch {
                /* left alone this time */
              }
            }),
          );
        }
        return diffMembers(mls.leaves(g.state), members, devices, mls.myLeaf(g.state), known);
      };
      // Cached device lists first; a difference is confirmed against fresh lists of the
      // users it concerns (a stale cache must never remove a device that exists).
      let diff = await look(new Set());
      if (!emptyDiff(diff)) {
        const involved = new Set([...diff.add.map((d) => d.userId), ...diff.remove.map((l) => parseIdentity(l.identity)?.userId ?? '')]);
        diff = await look(involved);
      }
      if (emptyDiff(diff) && !o.addUsers?.length && !o.removeUsers?.length) return;
      const claimUsers = [...new Set(diff.add.map((d) => d.userId))];
      let adds: KeyPackage[] = [];
      let missing = false;
      if (claimUsers.length) {
        const r = await this.api.request<{ keyPackages: Array<{ userId: string; deviceId: string; keyPackage: string }>; missing: Array<{ userId: string; deviceId: string }> }>(
          'POST',
          `/conversations/${enc(id)}/mls/keypackages`,
          { users: claimUsers },
        );
        const want = new Set(diff.add.map((d) => deviceIdentity(d.userId, d.deviceId)));
        for (const k of r.keyPackages) {
          const ident = deviceIdentity(k.userId, k.deviceId);
          if (!want.has(ident)) continue;
          try {
            const kp = mls.readKeyPackage(fromBase64(k.keyPackage));
            // The package must be the device's own: its identity and registered key.
            const dev = (await this.devicesOf(k.userId)).find((d) => d.id === k.deviceId);
            if (mls.identityOf(kp) !== ident || !dev || toBase64(kp.leafNode.signaturePublicKey) !== dev.signatureKey) continue;
            adds.push(kp);
          } catch {
            /* a bad package is skipped */
          }
        }
        missing = r.missing.some((m) => want.has(deviceIdentity(m.userId, m.deviceId)));
      }
      if (adds.length === 0 && diff.remove.length === 0 && !o.addUsers?.length && !o.removeUsers?.length) {
        if (missing) this.retryMissing(id);
        return;
      }
      if (!o.now && attempt === 0 && !o.addUsers && !o.removeUsers) {
        // Another device may have fixed it meanwhile: look at the newest epoch first.
        await new Promise((r) => setTimeout(r, 0));
      }
      const outcome = await this.serial(id, async () => {
        const cur = this.groups.get(id);
        if (!cur || mls.epochOf(cur.state) !== mls.epochOf(g.state)) return { retry: true as const };
        const out = await mls.commit(this.ctx!, cur.state, adds, diff.remove.map((l) => l.index));
        try {
          await this.api.request<{ seq: number; epoch: number }>('POST', `/conversations/${enc(id)}/mls/commit`, {
            deviceId: this.deviceId,
            commit: toBase64(out.commit),
            ...(out.welcome ? { welcome: toBase64(out.welcome) } : {}),
            ...(o.addUsers?.length ? { add: o.addUsers } : {}),
            ...(o.removeUsers?.length ? { remove: o.removeUsers } : {}),
          });
        } catch (e) {
          const stale = isStale(e);
          if (stale === null) throw e;
          return { retry: true as const, epoch: stale };
        }
        // My own commit comes back as an `mls` frame for the old epoch: dropped then.
        await this.saveGroup(id, { ...cur, state: out.state });
        return { retry: false as const };
      });
      if (!outcome.retry) {
        this.bump();
        if (missing) this.retryMissing(id);
        else this.missingTries.delete(id);
        return;
      }
      adds = [];
      await this.waitEpoch(id, 'epoch' in outcome && outcome.epoch !== undefined && outcome.epoch >= 0 ? outcome.epoch : mls.epochOf(g.state) + 1, 5000);
      await new Promise((r) => setTimeout(r, commitJitter(this.random, 100, 700)));
      // The user-level change may have been made by the winner: only my part is left.
      if (o.addUsers && this.host.conversation(id)?.members.some((m) => o.addUsers!.includes(m.id))) o = { ...o, addUsers: undefined };
    }
  }

  /**
   * A device without KeyPackages (registered a moment ago, still uploading): looked at
   * again a few times (3, 6, 12, 24, 48 s), not forever (a device that never uploads any).
   */
  private retryMissing(id: string): void {
    const n = this.missingTries.get(id) ?? 0;
    if (n >= 5 || this.stopped) return;
    this.missingTries.set(id, n + 1);
    setTimeout(() => this.scheduleReconcile(id), 3000 * 2 ** n);
  }

  /** Adds a person to an encrypted conversation: their devices join by one commit, and the server's membership with it. */
  addUser(id: string, userId: string): Promise<void> {
    return this.reconcile(id, { now: true, addUsers: [userId] });
  }

  /** Removes a person: their devices leave by one commit, and the server's membership with it. */
  removeUser(id: string, userId: string): Promise<void> {
    return this.reconcile(id, { now: true, removeUsers: [userId] });
  }

  // ------------------------------------------------------------ verification

  /** A contact's devices and whether they were verified, or changed since verified or first seen. */
  async contact(userId: string): Promise<Contact> {
    const devices = await this.devicesOf(userId);
    const hash = await deviceSetHash(devices.map((d) => fromBase64(d.signatureKey)));
    let rec = this.contacts[userId];
    if (!rec) {
      rec = { seen: hash };
      this.contacts[userId] = rec;
      await this.vault.putJSON('contacts', this.contacts);
    }
    const verified = rec.verified !== undefined && rec.verified === hash;
    return { userId, devices, verified, changed: rec.verified !== undefined ? rec.verified !== hash : rec.seen !== hash };
  }

  async markVerified(userId: string): Promise<void> {
    const devices = await this.devicesOf(userId, true);
    const hash = await deviceSetHash(devices.map((d) => fromBase64(d.signatureKey)));
    this.contacts[userId] = { seen: hash, verified: hash };
    await this.vault.putJSON('contacts', this.contacts);
    this.bump();
  }

  /** Accepts a contact's new device set without verifying it (the warning goes). */
  async acknowledge(userId: string): Promise<void> {
    const devices = await this.devicesOf(userId, true);
    const hash = await deviceSetHash(devices.map((d) => fromBase64(d.signatureKey)));
    this.contacts[userId] = { seen: hash };
    await this.vault.putJSON('contacts', this.contacts);
    this.bump();
  }

  /** For the browser tests: whether this device can decrypt a message now (without keeping the result). */
  async canDecrypt(id: string, ciphertext: string): Promise<boolean> {
    // The keys held, removed or not: being marked removed is not what stops it.
    const g = this.groups.get(id);
    if (!g) return false;
    try {
      const r = await mls.process(this.ctx!, g.state, fromBase64(ciphertext));
      return r.kind === 'application';
    } catch {
      return false;
    }
  }

  /** Resolves when everything queued for the conversation so far was processed. */
  settled(id: string): Promise<unknown> {
    return this.chains.get(id) ?? Promise.resolve();
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.reconcileTimers.values()) clearTimeout(t as number);
    this.reconcileTimers.clear();
  }
}

function defaultDeviceName(): string {
  if (typeof navigator === 'undefined') return 'Browser';
  const ua = navigator.userAgent;
  const browser = /Firefox\//.test(ua) ? 'Firefox' : /Edg\//.test(ua) ? 'Edge' : /Chrome\//.test(ua) ? 'Chrome' : /Safari\//.test(ua) ? 'Safari' : 'Browser';
  const os = /Windows/.test(ua) ? 'Windows' : /Mac OS X/.test(ua) ? 'macOS' : /Android/.test(ua) ? 'Android' : /iPhone|iPad/.test(ua) ? 'iOS' : /Linux/.test(ua) ? 'Linux' : '';
  return os ? `${browser} on ${os}` : browser;
}
