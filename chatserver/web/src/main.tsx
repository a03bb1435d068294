import { effect } from '@preact/signals';
import { render } from 'preact';
import { App } from './ui/App';
import { conversationPath, linkTarget, parseRoute } from './links';
import { notifications, PushDevice, startServiceWorker } from './push';
import { ChatStore } from './store';
import { initTheme } from './theme';
import './style.css';

// The colour scheme before anything is drawn (a class on <html>; no inline script).
initTheme();

const store = new ChatStore();
// The browser tests (e2e/e2ee.test.mjs) set this flag before the page loads, to ask the
// page's own MLS state whether it can decrypt a message (never set by the app).
if ((window as unknown as { __PARLEY_TEST__?: boolean }).__PARLEY_TEST__) (window as unknown as { __parleyStore: ChatStore }).__parleyStore = store;
// Notifications (src/push.ts): in-tab ones for new messages, this device's push subscription
// (dropped on the server before signing out), the service worker (registered once signed in).
const device = new PushDevice(store);
notifications.device = device;
store.onIncoming = (m, c) => device.incoming(m, c);
store.beforeSignOut = () => device.signOut();

/**
 * The conversation the address names. A message link (`/c/<id>/m/<messageId>`) also sets
 * `linkTarget`, and the conversation view then shows that message.
 */
function idFromPath(): string | null {
  const r = parseRoute(location.pathname);
  linkTarget.value = r.conversationId && r.messageId ? { conversationId: r.conversationId, messageId: r.messageId } : null;
  return r.conversationId;
}

/** Opens a conversation and keeps the address bar in step (so reload and back work). */
export function navigate(id: string | null): void {
  const path = id ? conversationPath(id) : '/';
  if (location.pathname !== path) history.pushState(null, '', path);
  void store.open(id);
}

window.addEventListener('popstate', () => void store.open(idFromPath()));
// Back online, or back to this tab: if the page is waiting to reconnect, it tries now.
window.addEventListener('online', () => store.online());
document.addEventListener('visibilitychange', () => {
  // The server pushes only to people with no visible page.
  store.sendVisibility();
  if (document.visibilityState !== 'visible') return;
  store.online();
  const id = store.activeId.value;
  if (id) store.markRead(id);
});

// Unread count in the tab title.
effect(() => {
  const n = store.sortedConversations.value.reduce((a, c) => a + (c.unread > 0 ? c.unread : 0), 0);
  document.title = n > 0 ? `(${n > 99 ? '99+' : n}) Parley` : 'Parley';
});

render(<App store={store} navigate={navigate} />, document.getElementById('app')!);

// Once signed in (at load, or later when the server was out of reach at first), open the
// conversation in the address bar. Once signed out, the address is `/` again: a
// conversation's address means nothing to the next person at this screen.
let wasSignedIn = false;
let swStarted = false;
effect(() => {
  const a = store.auth.value;
  const signedIn = a === 'signedIn';
  if (a === 'signedOut' && wasSignedIn && location.pathname !== '/') history.replaceState(null, '', '/');
  if (signedIn && !wasSignedIn) {
    if (!swStarted) {
      swStarted = true;
      startServiceWorker(device, (id) => {
        if (id && store.conversations.peek()[id]) navigate(id);
      });
    }
    void device.start();
    queueMicrotask(() => {
      const id = idFromPath();
      if (id && store.conversations.peek()[id]) void store.open(id);
      else if (location.pathname !== '/') history.replaceState(null, '', '/');
    });
  }
  if (signedIn) wasSignedIn = true;
  else if (a === 'signedOut') wasSignedIn = false;
});

void store.restore();
