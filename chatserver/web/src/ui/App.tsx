import { useEffect, useState } from 'preact/hooks';
import type { ChatStore } from '../store';
import { AuthScreen } from './Auth';
import { ConversationPane } from './Conversation';
import { Shortcuts } from './Shortcuts';
import { Sidebar } from './Sidebar';

export interface Props {
  store: ChatStore;
  navigate: (id: string | null) => void;
}

export function App({ store, navigate }: Props) {
  const auth = store.auth.value;
  if (auth === 'loading') {
    return (
      <main class="loading" aria-busy="true">
        <p>Loading Parley…</p>
      </main>
    );
  }
  if (auth === 'unreachable') {
    return (
      <main class="loading">
        <div class="auth-card">
          <h1 class="brand">Parley</h1>
          <p role="alert">{store.notice.value}</p>
          <button type="button" class="btn btn-primary" onClick={() => void store.restore()}>
            Try again
          </button>
        </div>
      </main>
    );
  }
  if (auth === 'signedOut') return <AuthScreen store={store} />;
  const active = store.activeId.value;
  return (
    <div class={'app' + (active ? ' has-active' : '')}>
      {/* The page's top heading, for screen readers (the layout shows no title). */}
      <h1 class="sr-only">Parley</h1>
      <ConnectionBanner store={store} />
      <Notice store={store} />
      <div class="layout">
        <Sidebar store={store} navigate={navigate} />
        <ConversationPane store={store} navigate={navigate} />
      </div>
      <Shortcuts store={store} navigate={navigate} />
    </div>
  );
}

function ConnectionBanner({ store }: { store: ChatStore }) {
  const s = store.conn.value;
  // The first connection normally takes a blink: say "Connecting…" only if it lasts.
  const [slow, setSlow] = useState(false);
  useEffect(() => {
    setSlow(false);
    if (s !== 'connecting') return;
    const t = setTimeout(() => setSlow(true), 1000);
    return () => clearTimeout(t);
  }, [s]);
  // The page never gives up (issue 12 defect 1): after a few failed attempts it says so,
  // and offers to try at once, but it keeps trying by itself either way.
  const long = store.connFailures.value >= 3;
  if (s === 'reconnecting' || (s === 'connecting' && slow)) {
    return (
      <div class="banner banner-warn" role="status" data-testid="conn-banner">
        <span class="spinner" aria-hidden="true" />
        <span>
          {s === 'reconnecting' ? 'Reconnecting…' : 'Connecting…'}
          {long && " Can't reach Parley yet; it keeps trying. What you write is kept and sent once it is back."}
        </span>
        {long && (
          <button type="button" class="btn btn-small" onClick={() => store.retryConnection()}>
            Retry now
          </button>
        )}
      </div>
    );
  }
  return <div class="sr-only" role="status" />;
}

function Notice({ store }: { store: ChatStore }) {
  const n = store.notice.value;
  if (!n) return null;
  return (
    <div class="notice" role="alert">
      <span>{n}</span>
      <button type="button" class="btn-icon" aria-label="Dismiss" onClick={() => (store.notice.value = null)}>
        ×
      </button>
    </div>
  );
}
