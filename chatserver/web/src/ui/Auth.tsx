import { useState } from 'preact/hooks';
import { describeError } from '../errors';
import type { ChatStore } from '../store';

export function AuthScreen({ store }: { store: ChatStore }) {
  const [mode, setMode] = useState<'login' | 'register'>('login');
  return (
    <main class="auth">
      <div class="auth-card">
        <h1 class="brand">Parley</h1>
        <p class="muted">Secure, real-time conversations.</p>
        {store.sessionEnded.value && (
          <p class="info" role="status">
            Your session has ended. Please sign in again.
          </p>
        )}
        {store.notice.value && (
          <p class="form-error" role="alert">
            {store.notice.value}
          </p>
        )}
        <div class="tabs" role="group" aria-label="Account">
          <button type="button" class="tab" aria-pressed={mode === 'login'} onClick={() => setMode('login')}>
            Sign in
          </button>
          <button type="button" class="tab" aria-pressed={mode === 'register'} onClick={() => setMode('register')}>
            Create account
          </button>
        </div>
        {mode === 'login' ? <LoginForm store={store} /> : <RegisterForm store={store} />}
      </div>
    </main>
  );
}

function LoginForm({ store }: { store: ChatStore }) {
  const [login, setLogin] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError('');
    store.notice.value = null;
    try {
      await store.login(login.trim(), password);
    } catch (err) {
      setError(describeError(err, 'login'));
      setBusy(false);
    }
  };
  return (
    <form class="form" onSubmit={submit} aria-label="Sign in">
      <label for="login">Username or email</label>
      <input id="login" name="username" autocomplete="username" required value={login} onInput={(e) => setLogin(e.currentTarget.value)} />
      <label for="password">Password</label>
      <input
        id="password"
        name="password"
        type="password"
        autocomplete="current-password"
        required
        value={password}
        onInput={(e) => setPassword(e.currentTarget.value)}
      />
      {error && (
        <p class="form-error" role="alert">
          {error}
        </p>
      )}
      <button type="submit" class="btn btn-primary" disabled={busy}>
        {busy ? 'Signing in…' : 'Sign in'}
      </button>
    </form>
  );
}

function RegisterForm({ store }: { store: ChatStore }) {
  const [displayName, setDisplayName] = useState('');
  const [username, setUsername] = useState('');
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError('');
    store.notice.value = null;
    try {
      await store.register(username.trim().toLowerCase(), email.trim(), password, displayName.trim() || username.trim());
    } catch (err) {
      setError(describeError(err, 'register'));
      setBusy(false);
    }
  };
  return (
    <form class="form" onSubmit={submit} aria-label="Create account">
      <label for="displayName">Your name</label>
      <input id="displayName" name="name" autocomplete="name" required maxLength={64} value={displayName} onInput={(e) => setDisplayName(e.currentTarget.value)} />
      <label for="username">Username</label>
      <input
        id="username"
        name="username"
        autocomplete="username"
        required
        minLength={3}
        maxLength={32}
        pattern="[A-Za-z0-9_.\-]{3,32}"
        aria-describedby="username-hint"
        value={username}
        onInput={(e) => setUsername(e.currentTarget.value)}
      />
      <p id="username-hint" class="hint">
        3 to 32 letters, digits, dots, dashes or underscores.
      </p>
      <label for="email">Email</label>
      <input id="email" name="email" type="email" autocomplete="email" required value={email} onInput={(e) => setEmail(e.currentTarget.value)} />
      <label for="new-password">Password</label>
      <input
        id="new-password"
        name="password"
        type="password"
        autocomplete="new-password"
        required
        minLength={8}
        maxLength={128}
        aria-describedby="password-hint"
        value={password}
        onInput={(e) => setPassword(e.currentTarget.value)}
      />
      <p id="password-hint" class="hint">
        At least 8 characters. A long phrase is easy to remember and hard to guess.
      </p>
      {error && (
        <p class="form-error" role="alert">
          {error}
        </p>
      )}
      <button type="submit" class="btn btn-primary" disabled={busy}>
        {busy ? 'Creating account…' : 'Create account'}
      </button>
    </form>
  );
}
