import { useEffect, useRef, useState } from 'preact/hooks';
import { previewText } from '../attachments';
import { AVATAR_MAX_BYTES, AVATAR_TYPES } from '../avatars';
import { ApiError } from '../api';
import { describeError } from '../errors';
import { setTheme, theme, type ThemeChoice } from '../theme';
import { FormError, serverErrors } from './Auth';
import { shortcutDialog } from './Shortcuts';
import { conversationTitle, type ChatStore } from '../store';
import type { Conversation, User } from '../types';
import { Avatar, Field, listTime, Modal, useFormErrors, UserSearch } from './common';
import { activeUntil, mentionsMeUnread, muteText } from '../notify';
import { BellIcon, NotificationsDialog } from './Notifications';
import { DevicesDialog, LockMark } from './Encryption';

interface Props {
  store: ChatStore;
  navigate: (id: string | null) => void;
}

export function Sidebar({ store, navigate }: Props) {
  const [dialog, setDialog] = useState<'direct' | 'group' | 'password' | 'profile' | 'logout-all' | 'notifications' | 'devices' | null>(null);
  const me = store.me.value!;
  const list = store.sortedConversations.value;
  const active = store.activeId.value;
  return (
    <aside class="sidebar" aria-label="Conversations">
      <header class="sidebar-head">
        <div class="me">
          <Avatar name={me.displayName || me.username} id={me.id} avatar={me.avatar} />
          <div class="me-text">
            <span class="me-name" data-testid="my-name">
              {me.displayName || me.username}
            </span>
            <span class="muted">@{me.username}</span>
          </div>
        </div>
        <AccountMenu store={store} open={setDialog} />
      </header>
      <div class="sidebar-actions">
        <button type="button" class="btn btn-primary" onClick={() => setDialog('direct')}>
          New chat
        </button>
        <button type="button" class="btn" onClick={() => setDialog('group')}>
          New group
        </button>
      </div>
      <nav aria-label="Conversation list" class="conv-nav">
        {list.length === 0 ? (
          <p class="empty muted">No conversations yet. Start one with “New chat”.</p>
        ) : (
          <ul class="conv-list">
            {list.map((c) => (
              <ConversationItem
                key={c.id}
                c={c}
                myId={me.id}
                active={c.id === active}
                onOpen={() => navigate(c.id)}
                typing={Object.keys(store.typing.value[c.id] ?? {}).length > 0}
                draft={store.drafts.value[c.id]}
                mentioned={mentionsMeUnread(c, store.threads.value[c.id]?.messages ?? [], me.id)}
              />
            ))}
          </ul>
        )}
      </nav>
      {dialog === 'direct' && <NewDirectDialog store={store} navigate={navigate} onClose={() => setDialog(null)} />}
      {dialog === 'group' && <NewGroupDialog store={store} navigate={navigate} onClose={() => setDialog(null)} />}
      {dialog === 'password' && <PasswordDialog store={store} onClose={() => setDialog(null)} />}
      {dialog === 'profile' && <ProfileDialog store={store} onClose={() => setDialog(null)} />}
      {dialog === 'logout-all' && <LogoutAllDialog store={store} onClose={() => setDialog(null)} />}
      {dialog === 'notifications' && <NotificationsDialog store={store} onClose={() => setDialog(null)} />}
      {dialog === 'devices' && <DevicesDialog store={store} onClose={() => setDialog(null)} />}
    </aside>
  );
}

/**
 * The Account menu: a button and the list it shows (a disclosure: its items are ordinary
 * buttons). Escape, a click outside and the focus leaving close it; Up and Down move
 * between its items; Escape gives the focus back to the button.
 */
function AccountMenu({ store, open }: { store: ChatStore; open: (d: 'password' | 'profile' | 'logout-all' | 'notifications' | 'devices') => void }) {
  const [shown, setShown] = useState(false);
  const wrap = useRef<HTMLDivElement>(null);
  const button = useRef<HTMLButtonElement>(null);
  const close = (focusButton: boolean) => {
    setShown(false);
    if (focusButton) button.current?.focus();
  };
  useEffect(() => {
    if (!shown) return;
    const outside = (e: Event) => {
      if (wrap.current && !wrap.current.contains(e.target as Node)) setShown(false);
    };
    const esc = (e: KeyboardEvent) => {
      if (e.key !== 'Escape' || e.defaultPrevented) return;
      e.preventDefault();
      close(wrap.current?.contains(document.activeElement) ?? false);
    };
    document.addEventListener('pointerdown', outside, true);
    document.addEventListener('keydown', esc);
    return () => {
      document.removeEventListener('pointerdown', outside, true);
      document.removeEventListener('keydown', esc);
    };
  }, [shown]);
  const items = () => [...(wrap.current?.querySelectorAll<HTMLButtonElement>('.menu-items button') ?? [])];
  // A chosen item closes the menu, so it does not cover the list.
  const pick = (f: () => void) => () => {
    setShown(false);
    f();
  };
  const choice = theme.value;
  return (
    <div
      class="menu"
      ref={wrap}
      data-popup-open={shown ? '' : undefined}
      onKeyDown={(e) => {
        if (!shown || (e.key !== 'ArrowDown' && e.key !== 'ArrowUp')) return;
        const all = items();
        if (all.length === 0) return;
        e.preventDefault();
        const i = all.indexOf(document.activeElement as HTMLButtonElement);
        const next = i < 0 ? (e.key === 'ArrowDown' ? 0 : all.length - 1) : (i + (e.key === 'ArrowDown' ? 1 : all.length - 1)) % all.length;
        all[next].focus();
      }}
      onFocusOut={(e) => {
        // Tab away from the menu: it closes.
        const to = e.relatedTarget as Node | null;
        if (shown && to && wrap.current && !wrap.current.contains(to)) setShown(false);
      }}
    >
      <button
        type="button"
        class="btn btn-small"
        ref={button}
        aria-label="Account menu"
        aria-expanded={shown}
        aria-controls="account-menu"
        onClick={() => setShown(!shown)}
      >
        Account <span aria-hidden="true">▾</span>
      </button>
      {shown && (
        <div class="menu-items" id="account-menu">
          <button type="button" class="menu-item" onClick={pick(() => open('profile'))}>
            Edit profile
          </button>
          <button type="button" class="menu-item" onClick={pick(() => open('password'))}>
            Change password
          </button>
          <button type="button" class="menu-item" onClick={pick(() => open('notifications'))}>
            Notifications
          </button>
          <button type="button" class="menu-item" onClick={pick(() => open('devices'))}>
            Devices
          </button>
          <div class="menu-group" role="group" aria-labelledby="theme-label">
            <span id="theme-label" class="menu-label">
              Appearance
            </span>
            <div class="segmented">
              {(['system', 'light', 'dark'] as ThemeChoice[]).map((t) => (
                <button key={t} type="button" class="segment" aria-pressed={choice === t} onClick={() => setTheme(t)}>
                  {t === 'system' ? 'System' : t === 'light' ? 'Light' : 'Dark'}
                </button>
              ))}
            </div>
          </div>
          <button type="button" class="menu-item" onClick={pick(() => (shortcutDialog.value = 'help'))}>
            Keyboard shortcuts
          </button>
          <button type="button" class="menu-item" onClick={pick(() => void store.logout())}>
            Sign out
          </button>
          <button type="button" class="menu-item danger" onClick={pick(() => open('logout-all'))}>
            Sign out everywhere…
          </button>
        </div>
      )}
    </div>
  );
}

function ConversationItem({ c, myId, active, onOpen, typing, draft, mentioned }: { c: Conversation; myId: string; active: boolean; onOpen: () => void; typing: boolean; draft?: string; mentioned: boolean }) {
  const muted = activeUntil(c.mutedUntil, Date.now());
  const title = conversationTitle(c, myId);
  const other = c.kind === 'direct' ? c.members.find((m) => m.id !== myId) : undefined;
  const last = c.lastMessage;
  let preview = 'No messages yet';
  const hasDraft = !active && !typing && !!draft?.trim();
  if (typing) preview = 'typing…';
  else if (hasDraft) preview = draft!.replace(/\s+/g, ' ');
  else if (last) {
    const who = last.senderId === myId ? 'You: ' : c.kind === 'group' ? (c.members.find((m) => m.id === last.senderId)?.displayName ?? 'Someone') + ': ' : '';
    // Plain text: the Markdown's markers go, files are named ("📎 photo.jpg", "🎤 Voice message 0:07").
    preview = last.deleted
      ? last.deleted.reason === 'expired'
        ? 'Message disappeared'
        : who + 'Message deleted'
      : last.undecryptable && c.e2ee
        ? who + 'Encrypted message'
        : who + previewText(last);
  }
  // The button's name is its content (title, status, time, preview, unread), so a screen
  // reader hears what the eye sees; the hidden commas only separate the parts.
  return (
    <li>
      <button type="button" class={'conv' + (active ? ' active' : '') + (c.unread > 0 ? ' unread' : '')} aria-current={active ? 'page' : undefined} onClick={onOpen} data-conversation={c.id}>
        <Avatar name={title} id={c.kind === 'direct' && other ? other.id : c.id} online={other ? !!other.online : undefined} avatar={c.kind === 'direct' ? other?.avatar : undefined} />
        <span class="conv-text">
          <span class="conv-top">
            <span class="conv-title">{title}</span>
            {c.e2ee && <LockMark />}
            {other && <span class="sr-only">{other.online ? ', online' : ', offline'}</span>}
            {muted && (
              <span class="conv-muted" title={muteText(c.mutedUntil, Date.now(), (d) => d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' })) ?? undefined} data-testid="conv-muted">
                <BellIcon off />
                <span class="sr-only">, muted</span>
              </span>
            )}
            {last && (
              <span class="conv-time muted">
                <span class="sr-only">, </span>
                {listTime(last.createdAt)}
              </span>
            )}
          </span>
          <span class="conv-bottom">
            <span class={'conv-preview' + (typing ? ' is-typing' : '')} data-testid="conv-preview">
              <span class="sr-only">, </span>
              {hasDraft && <span class="draft-label">Draft: </span>}
              {mentioned && !hasDraft && !typing && (
                <span class="mention-label" data-testid="mentioned">
                  @ mentioned you<span class="sr-only">:</span>{' '}
                </span>
              )}
              {preview}
            </span>
            {c.unread > 0 && (
              <span class="badge" data-testid="unread">
                <span class="sr-only">, </span>
                {c.unread > 99 ? '99+' : c.unread}
                <span class="sr-only"> unread</span>
              </span>
            )}
          </span>
        </span>
      </button>
    </li>
  );
}

/** "End-to-end encrypted" when creating a conversation: chosen once, never switched off. */
function E2eeOption({ store, checked, onChange }: { store: ChatStore; checked: boolean; onChange: (v: boolean) => void }) {
  const unavailable = !store.e2ee;
  return (
    <label class="e2ee-option">
      <input type="checkbox" checked={checked} disabled={unavailable} onChange={(e) => onChange(e.currentTarget.checked)} data-testid="e2ee-option" />
      <span>
        End-to-end encrypted
        <small>{unavailable ? (store.e2eeError.value ?? 'Not available in this browser.') : 'Only the members’ devices can read it, not the server. This cannot be switched off later.'}</small>
      </span>
    </label>
  );
}

function NewDirectDialog({ store, navigate, onClose }: Props & { onClose: () => void }) {
  const [error, setError] = useState('');
  const [e2ee, setE2ee] = useState(false);
  const pick = async (u: User) => {
    try {
      const c = await store.startDirect(u.id, e2ee);
      onClose();
      navigate(c.id);
    } catch (e) {
      setError(describeError(e));
    }
  };
  return (
    <Modal title="New chat" onClose={onClose}>
      <E2eeOption store={store} checked={e2ee} onChange={setE2ee} />
      <UserSearch store={store} autoFocus label="Find a person" actionLabel={(u) => `Message ${u.displayName || u.username} (@${u.username})`} onPick={pick} />
      {error && (
        <p class="form-error" role="alert">
          {error}
        </p>
      )}
    </Modal>
  );
}

function NewGroupDialog({ store, navigate, onClose }: Props & { onClose: () => void }) {
  const [title, setTitle] = useState('');
  const [members, setMembers] = useState<User[]>([]);
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const [e2ee, setE2ee] = useState(false);
  const create = async (e: Event) => {
    e.preventDefault();
    if (!title.trim()) {
      setError('Give the group a name.');
      return;
    }
    setBusy(true);
    try {
      const c = await store.createGroup(
        title.trim(),
        members.map((m) => m.id),
        e2ee,
      );
      onClose();
      navigate(c.id);
    } catch (err) {
      setError(describeError(err, 'members'));
      setBusy(false);
    }
  };
  return (
    <Modal title="New group" onClose={onClose}>
      <form class="form" onSubmit={create}>
        <label for="group-title">Group name</label>
        <input id="group-title" autoFocus required maxLength={100} value={title} onInput={(e) => setTitle(e.currentTarget.value)} />
        <p class="label-like" id="chosen-label">
          Members ({members.length})
        </p>
        <ul class="chips" aria-labelledby="chosen-label">
          {members.map((m) => (
            <li key={m.id} class="chip">
              {m.displayName || m.username}
              <button type="button" class="chip-x" aria-label={`Remove ${m.displayName || m.username}`} onClick={() => setMembers(members.filter((x) => x.id !== m.id))}>
                ×
              </button>
            </li>
          ))}
        </ul>
        <UserSearch
          store={store}
          label="Add people"
          exclude={new Set(members.map((m) => m.id))}
          actionLabel={(u) => `Add ${u.displayName || u.username} (@${u.username})`}
          onPick={(u) => setMembers([...members, u])}
        />
        <E2eeOption store={store} checked={e2ee} onChange={setE2ee} />
        {error && (
          <p class="form-error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" class="btn btn-primary" disabled={busy}>
          Create group
        </button>
      </form>
    </Modal>
  );
}

const PASSWORD_IDS: Record<string, string> = { currentPassword: 'current-password', newPassword: 'new-password-1', again: 'new-password-2' };

function PasswordDialog({ store, onClose }: { store: ChatStore; onClose: () => void }) {
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [again, setAgain] = useState('');
  const [done, setDone] = useState(false);
  const [busy, setBusy] = useState(false);
  const f = useFormErrors(['currentPassword', 'newPassword', 'again'], (k) => PASSWORD_IDS[k]);
  const submit = async (e: Event) => {
    e.preventDefault();
    const bad: Record<string, string> = {};
    if (!current) bad.currentPassword = 'Enter your current password.';
    if (next.length < 8) bad.newPassword = next ? 'Use at least 8 characters.' : 'Choose a new password.';
    else if (next.length > 128) bad.newPassword = 'Use 128 characters at most.';
    if (!bad.newPassword && next !== again) bad.again = 'The two new passwords are not the same.';
    if (Object.keys(bad).length) return f.show(bad);
    setBusy(true);
    f.clear();
    try {
      await store.changePassword(current, next);
      setDone(true);
    } catch (err) {
      const [fields, whole] = serverErrors(err, 'password', { currentPassword: 'currentPassword', newPassword: 'newPassword', password: 'newPassword' });
      f.show(fields, whole);
    } finally {
      setBusy(false);
    }
  };
  if (done) {
    return (
      <Modal title="Password changed" onClose={onClose}>
        <p role="status">Your password is changed. Every other device has been signed out; this one stays signed in.</p>
        <button type="button" class="btn btn-primary" onClick={onClose}>
          Done
        </button>
      </Modal>
    );
  }
  const input = (k: string, set: (v: string) => void) => (e: Event) => {
    set((e.currentTarget as HTMLInputElement).value);
    f.clear(k);
  };
  return (
    <Modal title="Change password" onClose={onClose}>
      <form class="form" onSubmit={submit} noValidate>
        <Field id="current-password" label="Current password" type="password" autocomplete="current-password" required autoFocus error={f.errors.currentPassword} value={current} onInput={input('currentPassword', setCurrent)} />
        <Field
          id="new-password-1"
          label="New password"
          type="password"
          autocomplete="new-password"
          required
          maxLength={128}
          hint="At least 8 characters; a long phrase is best. Other devices will be signed out."
          error={f.errors.newPassword}
          value={next}
          onInput={input('newPassword', setNext)}
        />
        <Field id="new-password-2" label="New password again" type="password" autocomplete="new-password" required error={f.errors.again} value={again} onInput={input('again', setAgain)} />
        <FormError text={f.formError} />
        <button type="submit" class="btn btn-primary" disabled={busy}>
          Change password
        </button>
      </form>
    </Modal>
  );
}

/** What went wrong with a profile photo, in words (client checks and server answers). */
export function photoError(e: unknown): string {
  if (e instanceof ApiError) {
    switch (e.code) {
      case 'attachment_too_large':
      case 'request_too_large':
        return 'This image is too large: choose one under 10 MB.';
      case 'image_too_large':
        return `This image has too many pixels for the server to read. ${e.message ? e.message.charAt(0).toUpperCase() + e.message.slice(1) + '.' : ''}`.trim();
      case 'invalid_media':
        return 'This file is not an image Parley can read. Choose a JPEG, PNG, GIF or WebP photo.';
    }
  }
  return describeError(e);
}

/** Choose, preview and save a profile photo, or remove it. */
function PhotoSection({ store }: { store: ChatStore }) {
  const me = store.me.value!;
  const input = useRef<HTMLInputElement>(null);
  const [file, setFile] = useState<File | null>(null);
  const [preview, setPreview] = useState<string | null>(null);
  const [error, setError] = useState('');
  const [status, setStatus] = useState('');
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    if (!file) return setPreview(null);
    const url = URL.createObjectURL(file);
    setPreview(url);
    return () => URL.revokeObjectURL(url);
  }, [file]);
  const pick = (f: File | undefined) => {
    setStatus('');
    setError('');
    if (!f) return;
    if (!AVATAR_TYPES.includes(f.type)) return setError('Choose a JPEG, PNG, GIF or WebP image.');
    if (f.size > AVATAR_MAX_BYTES) return setError(`This image is ${(f.size / 1024 / 1024).toFixed(1)} MB: choose one under 10 MB.`);
    setFile(f);
  };
  const run = async (what: () => Promise<void>, done: string) => {
    setBusy(true);
    setError('');
    try {
      await what();
      setFile(null);
      setStatus(done);
    } catch (e) {
      setError(photoError(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <section class="profile-photo-section" aria-labelledby="profile-photo-label">
      <p class="label-like" id="profile-photo-label">
        Profile photo
      </p>
      <div class="profile-photo">
        {preview ? <img class="profile-photo-preview" src={preview} alt="Preview of the new photo" data-testid="photo-preview" /> : <Avatar name={me.displayName || me.username} id={me.id} avatar={me.avatar} />}
        <div class="profile-photo-actions">
          <input
            ref={input}
            id="profile-photo-file"
            hidden
            type="file"
            accept={AVATAR_TYPES.join(',')}
            onChange={(e) => {
              pick(e.currentTarget.files?.[0]);
              e.currentTarget.value = '';
            }}
          />
          {file ? (
            <>
              <button type="button" class="btn btn-primary" disabled={busy} onClick={() => run(() => store.setAvatar(file), 'Photo saved.')}>
                {busy ? 'Saving…' : 'Save photo'}
              </button>
              <button type="button" class="btn" disabled={busy} onClick={() => setFile(null)}>
                Cancel
              </button>
            </>
          ) : (
            <>
              {/* The file input is hidden: this button opens it, and is what a keyboard and a screen reader meet. */}
              <button type="button" class="btn" disabled={busy} aria-describedby="profile-photo-hint" onClick={() => input.current?.click()}>
                {me.avatar ? 'Change photo' : 'Add photo'}
              </button>
              {me.avatar && (
                <button type="button" class="btn" disabled={busy} onClick={() => run(() => store.removeAvatar(), 'Photo removed.')}>
                  Remove photo
                </button>
              )}
            </>
          )}
        </div>
      </div>
      <p id="profile-photo-hint" class="hint">
        JPEG, PNG, GIF or WebP, up to 10 MB. It is cut to a square from the middle. Anyone signed in to Parley can see it.
      </p>
      {error && (
        <p class="form-error" role="alert" data-testid="photo-error">
          {error}
        </p>
      )}
      <p class="sr-only" role="status">
        {status}
      </p>
    </section>
  );
}

/** Change my display name and profile photo. */
function ProfileDialog({ store, onClose }: { store: ChatStore; onClose: () => void }) {
  const me = store.me.value!;
  const [name, setName] = useState(me.displayName);
  const [busy, setBusy] = useState(false);
  const f = useFormErrors(['displayName'], () => 'profile-name');
  const submit = async (e: Event) => {
    e.preventDefault();
    const v = name.trim();
    if (!v) return f.show({ displayName: 'Enter your name, as others will see it.' });
    if (v.length > 64) return f.show({ displayName: 'Your name can be 64 characters at most.' });
    if (v === me.displayName) return onClose();
    setBusy(true);
    f.clear();
    try {
      await store.updateProfile(v);
      onClose();
    } catch (err) {
      const [fields, whole] = serverErrors(err, 'profile', { displayName: 'displayName' });
      f.show(fields, whole);
      setBusy(false);
    }
  };
  return (
    <Modal title="Edit profile" onClose={onClose}>
      <PhotoSection store={store} />
      <form class="form" onSubmit={submit} noValidate>
        <Field
          id="profile-name"
          label="Your name"
          autocomplete="name"
          required
          autoFocus
          maxLength={64}
          hint={`Shown to the people you talk with. Your username stays @${me.username}.`}
          error={f.errors.displayName}
          value={name}
          onInput={(e) => {
            setName(e.currentTarget.value);
            f.clear('displayName');
          }}
        />
        <FormError text={f.formError} />
        <button type="submit" class="btn btn-primary" disabled={busy}>
          {busy ? 'Saving…' : 'Save'}
        </button>
      </form>
    </Modal>
  );
}

/** Signing out everywhere ends every session of this person: it asks first. */
function LogoutAllDialog({ store, onClose }: { store: ChatStore; onClose: () => void }) {
  const [busy, setBusy] = useState(false);
  return (
    <Modal title="Sign out everywhere?" onClose={onClose}>
      <p>This signs you out on every device and browser where you use Parley, this one included. Messages not sent yet are lost.</p>
      <div class="dialog-actions">
        <button type="button" class="btn" autoFocus onClick={onClose}>
          Cancel
        </button>
        <button
          type="button"
          class="btn btn-danger"
          disabled={busy}
          onClick={async () => {
            setBusy(true);
            await store.logoutAll();
            setBusy(false);
          }}
        >
          Sign out everywhere
        </button>
      </div>
    </Modal>
  );
}
