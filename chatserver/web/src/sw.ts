// The service worker (served at /sw.js, scope /), built on its own by vite.config.ts into one
// classic script with no imports: it shows pushes as notifications, opens the conversation
// when one is clicked, and subscribes again when the push service changes the subscription.
// Nothing here caches the app: Parley is not offline-capable, and a stale cached client
// would talk to a newer server.
import { notificationFor, type PushPayload } from './notify';

// The DOM library has no service worker types; these are the parts used here.
interface ExtendableEvent extends Event {
  waitUntil(p: Promise<unknown>): void;
}
interface PushEventLike extends ExtendableEvent {
  data: { json(): unknown; text(): string } | null;
}
interface NotificationEventLike extends ExtendableEvent {
  notification: Notification;
}
interface SubscriptionChangeEvent extends ExtendableEvent {
  oldSubscription?: PushSubscription | null;
  newSubscription?: PushSubscription | null;
}
interface WindowClientLike {
  url: string;
  focused: boolean;
  focus(): Promise<WindowClientLike>;
  postMessage(m: unknown): void;
}
interface SWScope {
  location: Location;
  registration: ServiceWorkerRegistration;
  clients: {
    matchAll(o: { type: 'window'; includeUncontrolled: boolean }): Promise<WindowClientLike[]>;
    openWindow(url: string): Promise<WindowClientLike | null>;
    claim(): Promise<void>;
  };
  skipWaiting(): Promise<void>;
  addEventListener(type: string, f: (e: never) => void): void;
}
declare const self: SWScope;

const API = '/api/v1';

/**
 * Keeps the worker alive until p settles. waitUntil throws for an event the browser did not
 * dispatch (the browser tests dispatch notificationclick themselves: CDP cannot click a
 * notification); the work runs either way.
 */
function keep(e: ExtendableEvent, p: Promise<unknown>): void {
  try {
    e.waitUntil(p);
  } catch {
    void p.catch(() => undefined);
  }
}

self.addEventListener('install', () => {
  void self.skipWaiting();
});
self.addEventListener('activate', (e: ExtendableEvent) => e.waitUntil(self.clients.claim()));

self.addEventListener('push', (e: PushEventLike) => {
  let p: PushPayload | null = null;
  try {
    p = (e.data?.json() as PushPayload) ?? null;
  } catch {
    p = null; // not JSON: a notification that says only that something arrived
  }
  const n = notificationFor(p);
  // userVisibleOnly: every push shows a notification (the browser would show its own otherwise).
  e.waitUntil(self.registration.showNotification(n.title, n.options));
});

self.addEventListener('notificationclick', (e: NotificationEventLike) => {
  e.notification.close();
  const id = (e.notification.data as { conversationId?: string | null } | null)?.conversationId ?? null;
  keep(e, openConversation(id));
});

/**
 * Focuses a tab of the app and has it open the conversation (a message, so the page does
 * not reload), else opens one at the conversation's address.
 */
async function openConversation(id: string | null): Promise<void> {
  const wins = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  const mine = wins.filter((w) => new URL(w.url).origin === self.location.origin);
  const w = mine.find((x) => x.focused) ?? mine[0];
  if (w) {
    w.postMessage({ type: 'parley-open', conversationId: id });
    await w.focus().catch(() => undefined);
    return;
  }
  await self.clients.openWindow(id ? `/c/${encodeURIComponent(id)}` : '/');
}

self.addEventListener('pushsubscriptionchange', (e: SubscriptionChangeEvent) => e.waitUntil(subscriptionChanged(e)));

/**
 * The push service ended or replaced the subscription: subscribe again with the same
 * server key and tell the server. Open tabs do the telling (they hold an access token);
 * with none open the worker asks for a session from the refresh cookie itself, taking
 * its turn with the tabs (Web Lock `parley-refresh`: the cookie is single use).
 */
async function subscriptionChanged(e: SubscriptionChangeEvent): Promise<void> {
  const old = e.oldSubscription ?? null;
  let sub = e.newSubscription ?? null;
  if (!sub) {
    const key = old?.options?.applicationServerKey ?? null;
    if (!key) return; // nothing to renew with; the next page load subscribes again
    sub = await self.registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
  }
  const wins = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  if (wins.length > 0) {
    for (const w of wins) w.postMessage({ type: 'parley-push-changed', oldEndpoint: old?.endpoint ?? null });
    return;
  }
  const token = await refreshedToken();
  if (!token) return;
  const headers = { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' };
  await fetch(`${API}/push/subscriptions`, { method: 'POST', headers, body: JSON.stringify(sub.toJSON()) });
  if (old && old.endpoint !== sub.endpoint) {
    await fetch(`${API}/push/subscriptions`, { method: 'DELETE', headers, body: JSON.stringify({ endpoint: old.endpoint }) }).catch(() => undefined);
  }
}

async function refreshedToken(): Promise<string | null> {
  const locks = (self as unknown as { navigator: { locks?: LockManager } }).navigator.locks;
  const run = async () => {
    const res = await fetch(`${API}/auth/refresh`, { method: 'POST', credentials: 'same-origin', headers: { 'Content-Type': 'application/json' }, body: '{}' });
    if (!res.ok) return null;
    return ((await res.json()) as { accessToken?: string }).accessToken ?? null;
  };
  try {
    return locks ? ((await locks.request('parley-refresh', run)) as string | null) : await run();
  } catch {
    return null;
  }
}
