import { useState } from 'preact/hooks';
import { describeError, errorField, type ErrorContext } from '../errors';
import type { ChatStore } from '../store';
import { Field, useFormErrors } from './common';

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

/** The form-level error (when no one field is at fault), where every form shows it. */
export function FormError({ text }: { text: string }) {
  if (!text) return null;
  return (
    <p class="form-error" role="alert" data-testid="form-error">
      {text}
    </p>
  );
}

/**
 * Puts a server error on the field it concerns (`fields` maps the server's field names to
 * this form's), or on the form.
 */
export function serverErrors(err: unknown, ctx: ErrorContext, fields: Record<string, string>): [Record<string, string>, string] {
  const text = describeError(err, ctx);
  const f = errorField(err, ctx);
  const mine = f ? fields[f] : undefined;
  return mine ? [{ [mine]: text }, ''] : [{}, text];
}

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const USERNAME = /^[A-Za-z0-9_.-]{3,32}$/;

function LoginForm({ store }: { store: ChatStore }) {
  const [login, setLogin] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const f = useFormErrors(['login', 'password']);
  const submit = async (e: Event) => {
    e.preventDefault();
    store.notice.value = null;
    const bad: Record<string, string> = {};
    if (!login.trim()) bad.login = 'Enter your username or email.';
    if (!password) bad.password = 'Enter your password.';
    if (Object.keys(bad).length) return f.show(bad);
    setBusy(true);
    f.clear();
    try {
      await store.login(login.trim(), password);
    } catch (err) {
      const [fields, whole] = serverErrors(err, 'login', { login: 'login', username: 'login', email: 'login', password: 'password' });
      f.show(fields, whole);
      setBusy(false);
    }
  };
  return (
    <form class="form" onSubmit={submit} aria-label="Sign in" noValidate>
      <Field
        id="login"
        label="Username or email"
        name="username"
        autocomplete="username"
        required
        autoFocus
        error={f.errors.login}
        value={login}
        onInput={(e) => {
          setLogin(e.currentTarget.value);
          f.clear('login');
        }}
      />
      <Field
        id="password"
        label="Password"
        name="password"
        type="password"
        autocomplete="current-password"
        required
        error={f.errors.password}
        value={password}
        onInput={(e) => {
          setPassword(e.currentTarget.value);
          f.clear('password');
        }}
      />
      <FormError text={f.formError} />
      <button type="submit" class="btn btn-primary" disabled={busy}>
        {busy ? 'Signing in…' : 'Sign in'}
      </button>
    </form>
  );
}

const REGISTER_IDS: Record<string, string> = { displayName: 'displayName', username: 'username', email: 'email', password: 'new-password' };

function RegisterForm({ store }: { store: ChatStore }) {
  const [displayName, setDisplayName] = useState('');
  const [username, setUsername] = useState('');
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const f = useFormErrors(['displayName', 'username', 'email', 'password'], (k) => REGISTER_IDS[k]);
  const submit = async (e: Event) => {
    e.preventDefault();
    store.notice.value = null;
    const bad: Record<string, string> = {};
    if (!displayName.trim()) bad.displayName = 'Enter your name, as others will see it.';
    else if (displayName.trim().length > 64) bad.displayName = 'Your name can be 64 characters at most.';
    if (!USERNAME.test(username.trim())) bad.username = username.trim() ? 'Use 3 to 32 letters, digits, dots, dashes or underscores.' : 'Choose a username.';
    if (!EMAIL.test(email.trim())) bad.email = email.trim() ? 'Enter an email address like name@example.com.' : 'Enter your email address.';
    if (password.length < 8) bad.password = password ? 'Use at least 8 characters.' : 'Choose a password.';
    else if (password.length > 128) bad.password = 'Use 128 characters at most.';
    if (Object.keys(bad).length) return f.show(bad);
    setBusy(true);
    f.clear();
    try {
      await store.register(username.trim().toLowerCase(), email.trim(), password, displayName.trim());
    } catch (err) {
      const [fields, whole] = serverErrors(err, 'register', { displayName: 'displayName', username: 'username', email: 'email', password: 'password' });
      f.show(fields, whole);
      setBusy(false);
    }
  };
  return (
    <form class="form" onSubmit={submit} aria-label="Create account" noValidate>
      <Field
        id="displayName"
        label="Your name"
        name="name"
        autocomplete="name"
        required
        autoFocus
        maxLength={64}
        error={f.errors.displayName}
        value={displayName}
        onInput={(e) => {
          setDisplayName(e.currentTarget.value);
          f.clear('displayName');
        }}
      />
      <Field
        id="username"
        label="Username"
        name="username"
        autocomplete="username"
        required
        maxLength={32}
        hint="3 to 32 letters, digits, dots, dashes or underscores."
        error={f.errors.username}
        value={username}
        onInput={(e) => {
          setUsername(e.currentTarget.value);
          f.clear('username');
        }}
      />
      <Field
        id="email"
        label="Email"
        name="email"
        type="email"
        autocomplete="email"
        required
        error={f.errors.email}
        value={email}
        onInput={(e) => {
          setEmail(e.currentTarget.value);
          f.clear('email');
        }}
      />
      <Field
        id="new-password"
        label="Password"
        name="password"
        type="password"
        autocomplete="new-password"
        required
        maxLength={128}
        hint="At least 8 characters. A long phrase is easy to remember and hard to guess."
        error={f.errors.password}
        value={password}
        onInput={(e) => {
          setPassword(e.currentTarget.value);
          f.clear('password');
        }}
      />
      <FormError text={f.formError} />
      <button type="submit" class="btn btn-primary" disabled={busy}>
        {busy ? 'Creating account…' : 'Create account'}
      </button>
    </form>
  );
}
