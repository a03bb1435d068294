import { useRef, useState } from 'preact/hooks';
import { describeError } from '../errors';
import { conversationTitle, type ChatStore } from '../store';
import type { Conversation, User } from '../types';
import { Avatar, listTime, Modal, UserSearch } from './common';

interface Props {
  store: ChatStore;
  navigate: (id: string | null) => void;
}

export function Sidebar({ store, navigate }: Props) {
  const [dialog, setDialog] = useState<'direct' | 'group' | 'password' | null>(null);
  const menu = useRef<HTMLDetailsElement>(null);
  // A chosen menu item closes the menu, so it does not cover the list.
  const pick = (f: () => void) => () => {
    if (menu.current) menu.current.open = false;
    f();
  };
  const me = store.me.value!;
  const list = store.sortedConversations.value;
  const active = store.activeId.value;
  return (
    <aside class="sidebar" aria-label="Conversations">
      <header class="sidebar-head">
        <div class="me">
          <Avatar name={me.displayName || me.username} id={me.id} />
          <div class="me-text">
            <span class="me-name">{me.displayName || me.username}</span>
            <span class="muted">@{me.username}</span>
          </div>
        </div>
        <details class="menu" ref={menu}>
          <summary class="btn btn-small" aria-label="Account menu">
            Account <span aria-hidden="true">▾</span>
          </summary>
          <div class="menu-items">
            <button type="button" class="menu-item" onClick={pick(() => void store.logout())}>
              Sign out
            </button>
            <button type="button" class="menu-item" onClick={pick(() => setDialog('password'))}>
              Change password
            </button>
            <button type="button" class="menu-item" onClick={pick(() => void store.logoutAll())}>
              Sign out everywhere
            </button>
          </div>
        </details>
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
              <ConversationItem key={c.id} c={c} myId={me.id} active={c.id === active} onOpen={() => navigate(c.id)} typing={Object.keys(store.typing.value[c.id] ?? {}).length > 0} draft={store.drafts.value[c.id]} />
            ))}
          </ul>
        )}
      </nav>
      {dialog === 'direct' && <NewDirectDialog store={store} navigate={navigate} onClose={() => setDialog(null)} />}
      {dialog === 'group' && <NewGroupDialog store={store} navigate={navigate} onClose={() => setDialog(null)} />}
      {dialog === 'password' && <PasswordDialog store={store} onClose={() => setDialog(null)} />}
    </aside>
  );
}

function ConversationItem({ c, myId, active, onOpen, typing, draft }: { c: Conversation; myId: string; active: boolean; onOpen: () => void; typing: boolean; draft?: string }) {
  const title = conversationTitle(c, myId);
  const other = c.kind === 'direct' ? c.members.find((m) => m.id !== myId) : undefined;
  const last = c.lastMessage;
  let preview = 'No messages yet';
  const hasDraft = !active && !typing && !!draft?.trim();
  if (typing) preview = 'typing…';
  else if (hasDraft) preview = draft!.replace(/\s+/g, ' ');
  else if (last) {
    const who = last.senderId === myId ? 'You: ' : c.kind === 'group' ? (c.members.find((m) => m.id === last.senderId)?.displayName ?? 'Someone') + ': ' : '';
    preview = last.deleted ? (last.deleted.reason === 'expired' ? 'Message disappeared' : who + 'Message deleted') : who + last.body.replace(/\s+/g, ' ');
  }
  const status = other ? (other.online ? ', online' : ', offline') : '';
  const unread = c.unread > 0 ? `, ${c.unread} unread` : '';
  return (
    <li>
      <button type="button" class={'conv' + (active ? ' active' : '') + (c.unread > 0 ? ' unread' : '')} aria-current={active ? 'page' : undefined} onClick={onOpen} aria-label={`${title}${status}${unread}`} data-conversation={c.id}>
        <Avatar name={title} id={c.kind === 'direct' && other ? other.id : c.id} online={other ? !!other.online : undefined} />
        <span class="conv-text">
          <span class="conv-top">
            <span class="conv-title">{title}</span>
            {last && <span class="conv-time muted">{listTime(last.createdAt)}</span>}
          </span>
          <span class="conv-bottom">
            <span class={'conv-preview' + (typing ? ' is-typing' : '')} data-testid="conv-preview">
              {hasDraft && <span class="draft-label">Draft: </span>}
              {preview}
            </span>
            {c.unread > 0 && (
              <span class="badge" data-testid="unread">
                {c.unread > 99 ? '99+' : c.unread}
              </span>
            )}
          </span>
        </span>
      </button>
    </li>
  );
}

function NewDirectDialog({ store, navigate, onClose }: Props & { onClose: () => void }) {
  const [error, setError] = useState('');
  const pick = async (u: User) => {
    try {
      const c = await store.startDirect(u.id);
      onClose();
      navigate(c.id);
    } catch (e) {
      setError(describeError(e));
    }
  };
  return (
    <Modal title="New chat" onClose={onClose}>
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
  const create = async (e: Event) => {
    e.preventDefault();
    if (!title.trim()) {
      setError('Give the group a name.');
      return;
    }
    setBusy(true);
    try {
      const c = await store.createGroup(title.trim(), members.map((m) => m.id));
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

function PasswordDialog({ store, onClose }: { store: ChatStore; onClose: () => void }) {
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [again, setAgain] = useState('');
  const [error, setError] = useState('');
  const [done, setDone] = useState(false);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    if (next !== again) {
      setError('The two new passwords are not the same.');
      return;
    }
    setBusy(true);
    setError('');
    try {
      await store.changePassword(current, next);
      setDone(true);
    } catch (err) {
      setError(describeError(err, 'password'));
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
  return (
    <Modal title="Change password" onClose={onClose}>
      <form class="form" onSubmit={submit}>
        <label>
          Current password
          <input type="password" autoComplete="current-password" required value={current} onInput={(e) => setCurrent(e.currentTarget.value)} autoFocus />
        </label>
        <label>
          New password
          <input type="password" autoComplete="new-password" required minLength={8} maxLength={128} value={next} onInput={(e) => setNext(e.currentTarget.value)} />
        </label>
        <label>
          New password again
          <input type="password" autoComplete="new-password" required value={again} onInput={(e) => setAgain(e.currentTarget.value)} />
        </label>
        <p class="muted">At least 8 characters; a long phrase is best. Other devices will be signed out.</p>
        {error && (
          <p class="form-error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" class="btn btn-primary" disabled={busy}>
          Change password
        </button>
      </form>
    </Modal>
  );
}
