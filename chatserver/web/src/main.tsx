import { effect } from '@preact/signals';
import { render } from 'preact';
import { App } from './ui/App';
import { ChatStore } from './store';
import './style.css';

const store = new ChatStore();

function idFromPath(): string | null {
  const m = /^\/c\/([^/]+)$/.exec(location.pathname);
  return m ? decodeURIComponent(m[1]) : null;
}

/** Opens a conversation and keeps the address bar in step (so reload and back work). */
export function navigate(id: string | null): void {
  const path = id ? `/c/${encodeURIComponent(id)}` : '/';
  if (location.pathname !== path) history.pushState(null, '', path);
  void store.open(id);
}

window.addEventListener('popstate', () => void store.open(idFromPath()));
window.addEventListener('online', () => store.online());
document.addEventListener('visibilitychange', () => {
  const id = store.activeId.value;
  if (id && document.visibilityState === 'visible') store.markRead(id);
});

// Unread count in the tab title.
effect(() => {
  const n = store.sortedConversations.value.reduce((a, c) => a + (c.unread > 0 ? c.unread : 0), 0);
  document.title = n > 0 ? `(${n > 99 ? '99+' : n}) Parley` : 'Parley';
});

render(<App store={store} navigate={navigate} />, document.getElementById('app')!);

// Once signed in (at load, or later when the server was out of reach at first), open the
// conversation in the address bar.
let wasSignedIn = false;
effect(() => {
  const signedIn = store.auth.value === 'signedIn';
  if (signedIn && !wasSignedIn) {
    queueMicrotask(() => {
      const id = idFromPath();
      if (id && store.conversations.peek()[id]) void store.open(id);
      else if (location.pathname !== '/') history.replaceState(null, '', '/');
    });
  }
  wasSignedIn = signedIn;
});

void store.restore();
