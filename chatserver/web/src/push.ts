// Notifications in the browser (issue 14): the service worker, this device's push
// subscription, the in-tab notifications and their sound. The decisions are in notify.ts
// (pure, unit-tested); this is the glue to the browser's APIs.
import { signal } from '@preact/signals';
import { previewText } from './attachments';
import { fromBase64Url, notificationFor, notifies, notifyDecision, previewOf, subscribeAction, toBase64Url, type PushPayload } from './notify';
import { browserStorage, type KeyValueStorage } from './persist';
import { conversationTitle, type ChatStore } from './store';
import type { Conversation, Message } from './types';

/** Where this device stands: what the Notifications dialog says. */
export type DeviceState =
  | 'unsupported' // no Notification API (or no service worker): nothing can be shown
  | 'off' // not opted in on this device
  | 'denied' // the browser (or the person, in its prompt) refused the permission
  | 'working' // asking, subscribing
  | 'push' // push subscription made and sent to the server: notified even with Parley closed
  | 'in-tab'; // notified while Parley is open only (`reason` says why)

/** What this device remembers per user (localStorage): the opt-in and the key it subscribed with. */
interface DeviceNote {
  on: boolean;
  key: string | null;
  endpoint: string | null;
}

const SOUND_KEY = 'parley:v1:sound';

/** Registering the service worker failed (a private window, an insecure origin). */
let noWorker = false;

export class PushDevice {
  readonly state = signal<DeviceState>('off');
  /** Why only in-tab notifications (shown under the switch). */
  readonly reason = signal<string | null>(null);
  /** A short sound with in-tab notifications (this device only). */
  readonly sound = signal(false);

  constructor(
    private readonly store: ChatStore,
    private readonly storage: KeyValueStorage = browserStorage(),
  ) {
    this.sound.value = this.storage.getItem(SOUND_KEY) === '1';
  }

  private noteKey(): string | null {
    const me = this.store.me.peek();
    return me ? `parley:v1:${me.id}:push` : null;
  }

  private note(): DeviceNote {
    const k = this.noteKey();
    try {
      const v = k ? (JSON.parse(this.storage.getItem(k) ?? 'null') as Partial<DeviceNote> | null) : null;
      if (v && typeof v === 'object') return { on: v.on === true, key: typeof v.key === 'string' ? v.key : null, endpoint: typeof v.endpoint === 'string' ? v.endpoint : null };
    } catch {
      /* a bad entry is no opt-in */
    }
    return { on: false, key: null, endpoint: null };
  }

  private setNote(n: DeviceNote): void {
    const k = this.noteKey();
    if (k) this.storage.setItem(k, JSON.stringify(n));
  }

  setSound(on: boolean): void {
    this.sound.value = on;
    this.storage.setItem(SOUND_KEY, on ? '1' : '0');
  }

  private supported(): boolean {
    return typeof Notification !== 'undefined' && 'serviceWorker' in navigator;
  }

  /**
   * At sign-in: where this device stands, and its subscription brought in line with the
   * server's key (subscribed again when the key changed, sent again otherwise).
   */
  async start(): Promise<void> {
    if (!this.supported()) {
      this.state.value = 'unsupported';
      return;
    }
    const n = this.note();
    if (!n.on) {
      this.state.value = 'off';
      return;
    }
    if (Notification.permission !== 'granted') {
      this.state.value = Notification.permission === 'denied' ? 'denied' : 'off';
      return;
    }
    await this.sync(n);
  }

  /** "Notify me on this device": asks the permission (only here, on the click), then subscribes. */
  async enable(): Promise<void> {
    if (!this.supported()) {
      this.state.value = 'unsupported';
      return;
    }
    this.state.value = 'working';
    let perm: NotificationPermission;
    try {
      perm = await Notification.requestPermission();
    } catch {
      perm = 'denied';
    }
    if (perm !== 'granted') {
      this.state.value = perm === 'denied' ? 'denied' : 'off';
      return;
    }
    const n = { ...this.note(), on: true };
    this.setNote(n);
    await this.sync(n);
  }

  /** Off on this device: the subscription goes (on the server and in the browser). */
  async disable(): Promise<void> {
    await this.dropSubscription();
    this.setNote({ on: false, key: null, endpoint: null });
    this.state.value = this.supported() ? 'off' : 'unsupported';
    this.reason.value = null;
  }

  /** Signing out: the server forgets this device's subscription; the opt-in is remembered for the next sign-in. */
  async signOut(): Promise<void> {
    const n = this.note();
    await this.dropSubscription();
    if (n.on) this.setNote({ on: true, key: null, endpoint: null });
  }

  private async dropSubscription(): Promise<void> {
    const sub = await currentSubscription();
    const endpoint = sub?.endpoint ?? this.note().endpoint;
    if (endpoint) await this.store.api.request('DELETE', '/push/subscriptions', { endpoint }).catch(() => undefined);
    await sub?.unsubscribe().catch(() => false);
  }

  /** Makes the browser's subscription and the server's agree, by subscribeAction. */
  private async sync(n: DeviceNote): Promise<void> {
    this.state.value = 'working';
    let serverKey: string | null = null;
    try {
      serverKey = (await this.store.api.request<{ publicKey: string }>('GET', '/push/vapid-key')).publicKey;
    } catch {
      serverKey = null;
    }
    if (!serverKey) return this.inTab('This server does not send push notifications; you will be notified while Parley is open.');
    const reg = await ready();
    if (!reg || !('pushManager' in reg)) return this.inTab('Push is not available in this browser; you will be notified while Parley is open.');
    let sub = await reg.pushManager.getSubscription().catch(() => null);
    const action = subscribeAction({
      optedIn: n.on,
      permission: Notification.permission,
      serverKey,
      storedKey: n.key,
      subscription: sub ? { key: toBase64Url(sub.options?.applicationServerKey ?? null) } : null,
    });
    try {
      if (action === 'resubscribe' && sub) {
        if (n.endpoint) await this.store.api.request('DELETE', '/push/subscriptions', { endpoint: n.endpoint }).catch(() => undefined);
        await sub.unsubscribe().catch(() => false);
        sub = null;
      }
      if (action === 'subscribe' || action === 'resubscribe') {
        sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: fromBase64Url(serverKey)! });
      }
    } catch {
      // No vendor push service (headless Chromium, some privacy settings): in-tab only.
      this.setNote({ on: true, key: null, endpoint: null });
      return this.inTab('Push is not available in this browser; you will be notified while Parley is open.');
    }
    if (!sub) return this.inTab('Push is not available in this browser; you will be notified while Parley is open.');
    try {
      await this.store.api.request('POST', '/push/subscriptions', sub.toJSON());
    } catch {
      this.setNote({ on: true, key: null, endpoint: sub.endpoint });
      return this.inTab('The server did not take this device’s subscription; you will be notified while Parley is open.');
    }
    this.setNote({ on: true, key: serverKey, endpoint: sub.endpoint });
    this.reason.value = null;
    this.state.value = 'push';
  }

  private inTab(why: string): void {
    this.reason.value = why;
    this.state.value = 'in-tab';
  }

  /** In-tab notifications are on: opted in here and the permission granted. */
  enabled(): boolean {
    return (this.state.peek() === 'push' || this.state.peek() === 'in-tab') && typeof Notification !== 'undefined' && Notification.permission === 'granted';
  }

  /** A new message arrived on the socket: shown as a notification when notifyDecision says so. */
  incoming(m: Message, c: Conversation): void {
    const me = this.store.me.peek();
    if (!me) return;
    const settings = this.store.notifySettings.peek();
    const d = notifyDecision({
      enabled: this.enabled(),
      visible: document.visibilityState === 'visible',
      meId: me.id,
      message: m,
      mutedUntil: c.mutedUntil,
      settings,
      now: Date.now(),
    });
    if (!notifies(d)) return;
    const sender = c.members.find((x) => x.id === m.senderId);
    const senderName = sender ? sender.displayName || sender.username : 'Someone';
    const p: PushPayload = {
      type: 'message',
      conversationId: c.id,
      messageId: m.id,
      kind: c.kind,
      title: c.kind === 'group' ? conversationTitle(c, me.id) : senderName,
      sender: { id: m.senderId, displayName: senderName },
      unread: c.unread,
      mention: d === 'mention',
      // The same privacy rule as pushes: the text only when the person asked for it.
      ...(settings?.pushPreview ? { body: previewOf(previewText(m)) } : {}),
    };
    const spec = notificationFor(p);
    void show(spec.title, spec.options, c.id);
    if (this.sound.peek()) beep();
  }
}

/** The active registration of the app's service worker; null where there is none. */
async function ready(): Promise<ServiceWorkerRegistration | null> {
  if (noWorker || !('serviceWorker' in navigator)) return null;
  const timeout = new Promise<null>((r) => setTimeout(() => r(null), 5000));
  return Promise.race([navigator.serviceWorker.ready, timeout]);
}

async function currentSubscription(): Promise<PushSubscription | null> {
  const reg = await ready();
  if (!reg || !('pushManager' in reg)) return null;
  return reg.pushManager.getSubscription().catch(() => null);
}

/**
 * Shows a notification through the service worker (its click is handled there, even after
 * the tab closed), or with the page's Notification where there is no worker.
 */
async function show(title: string, options: NotificationOptions & { renotify?: boolean }, conversationId: string): Promise<void> {
  const reg = await ready();
  if (reg) {
    await reg.showNotification(title, options).catch(() => undefined);
    return;
  }
  try {
    const n = new Notification(title, options);
    n.onclick = () => {
      window.focus();
      openHandler?.(conversationId);
      n.close();
    };
  } catch {
    /* a browser that allows notifications only from a service worker */
  }
}

let openHandler: ((id: string | null) => void) | null = null;
let audio: AudioContext | null = null;

/** A short two-tone chime (Web Audio: no file). */
function beep(): void {
  try {
    audio ??= new AudioContext();
    const t = audio.currentTime;
    const gain = audio.createGain();
    gain.connect(audio.destination);
    gain.gain.setValueAtTime(0.0001, t);
    gain.gain.exponentialRampToValueAtTime(0.15, t + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, t + 0.35);
    for (const [f, at] of [
      [880, 0],
      [1320, 0.12],
    ] as const) {
      const o = audio.createOscillator();
      o.frequency.value = f;
      o.connect(gain);
      o.start(t + at);
      o.stop(t + at + 0.2);
    }
  } catch {
    /* no audio: the notification is enough */
  }
}

const WORKER = '/sw.js';

/**
 * The worker's address as the CSP wants it: under `require-trusted-types-for 'script'`
 * register() takes only a TrustedScriptURL, made by the one policy the CSP allows
 * (`trusted-types parley-sw`), which returns this fixed path and refuses anything else.
 */
function workerURL(): string {
  const tt = (globalThis as { trustedTypes?: { createPolicy(name: string, rules: { createScriptURL(u: string): string }): { createScriptURL(u: string): unknown } } }).trustedTypes;
  if (!tt) return WORKER;
  const policy = tt.createPolicy('parley-sw', {
    createScriptURL: (u) => {
      if (u !== WORKER) throw new TypeError(`parley-sw: ${u} is not the service worker`);
      return u;
    },
  });
  return policy.createScriptURL(WORKER) as string;
}

/**
 * Registers /sw.js (scope /) and listens to it: a clicked notification opens its
 * conversation here; a changed push subscription is sent to the server again.
 */
export function startServiceWorker(device: PushDevice, open: (id: string | null) => void): void {
  openHandler = open;
  if (!('serviceWorker' in navigator)) return;
  navigator.serviceWorker.addEventListener('message', (e: MessageEvent) => {
    const d = e.data as { type?: string; conversationId?: unknown } | null;
    if (d?.type === 'parley-open') open(typeof d.conversationId === 'string' ? d.conversationId : null);
    else if (d?.type === 'parley-push-changed') void device.start();
  });
  navigator.serviceWorker
    .register(workerURL(), { scope: '/' })
    .catch(() => {
      // No worker: in-tab notifications use the page's Notification.
      noWorker = true;
    });
}

/** This page's device (set by main.tsx), for the Notifications dialog. */
export const notifications: { device: PushDevice | null } = { device: null };
