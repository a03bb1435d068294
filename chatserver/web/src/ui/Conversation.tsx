import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { describeError } from '../errors';
import { conversationTitle, type ChatStore } from '../store';
import { countAfter, dayKey, dayLabel, dividerBefore, linkify, type Pending } from '../thread';
import type { Conversation, Member, Message } from '../types';
import { Avatar, Modal, timeShort, UserSearch } from './common';

interface Props {
  store: ChatStore;
  navigate: (id: string | null) => void;
}

export function ConversationPane({ store, navigate }: Props) {
  const id = store.activeId.value;
  const c = id ? store.conversations.value[id] : undefined;
  if (!id || !c) {
    return (
      <main class="pane pane-empty" aria-label="Conversation">
        <p class="muted">Choose a conversation, or start a new one.</p>
      </main>
    );
  }
  return <ConversationView key={id} store={store} c={c} navigate={navigate} />;
}

function memberName(c: Conversation, id: string): string {
  const m = c.members.find((x) => x.id === id);
  return m ? m.displayName || m.username : 'Former member';
}

function subtitle(c: Conversation, myId: string): string {
  if (c.kind === 'group') {
    const online = c.members.filter((m) => m.id !== myId && m.online).length;
    return `${c.members.length} members` + (online ? `, ${online} online` : '');
  }
  const other = c.members.find((m) => m.id !== myId);
  if (!other) return '';
  if (other.online) return 'Online';
  if (other.lastSeen) return `Last seen ${new Date(other.lastSeen).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' })}`;
  return 'Offline';
}

function ConversationView({ store, c, navigate }: { store: ChatStore; c: Conversation; navigate: (id: string | null) => void }) {
  const me = store.me.value!;
  const thread = store.thread(c.id);
  const title = conversationTitle(c, me.id);
  const [showMembers, setShowMembers] = useState(false);
  const listRef = useRef<HTMLDivElement>(null);
  const stick = useRef(true);
  const loadingOlder = useRef(false);
  const prevHeight = useRef<number | null>(null);
  const typingUsers = Object.keys(store.typing.value[c.id] ?? {}).filter((u) => u !== me.id);
  const dividerRef = useRef<HTMLLIElement>(null);
  const placed = useRef(false);
  // The newest seq the person has had in view, and how many arrived below since.
  const newestSeen = useRef(0);
  const [below, setBelow] = useState(0);
  const mark = store.readMark.value;
  const divider = mark && mark.conversationId === c.id ? dividerBefore(thread.messages, mark.seq, me.id) : null;
  const newest = thread.messages.length ? thread.messages[thread.messages.length - 1].seq : 0;

  // Keep the view at the bottom when new messages arrive and the person was there.
  useLayoutEffect(() => {
    const el = listRef.current;
    if (!el) return;
    if (!placed.current && thread.loaded) {
      // First view: at "New messages" when it is there and the unread do not all fit, else the end.
      placed.current = true;
      const d = dividerRef.current;
      const top = d ? d.getBoundingClientRect().top - el.getBoundingClientRect().top + el.scrollTop - 8 : Infinity;
      el.scrollTop = Math.min(top, el.scrollHeight);
      stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
      newestSeen.current = newest;
      return;
    }
    if (prevHeight.current !== null) {
      // Older messages were put on top: keep what the person was looking at in place.
      el.scrollTop += el.scrollHeight - prevHeight.current;
      prevHeight.current = null;
    } else if (stick.current) {
      el.scrollTop = el.scrollHeight;
    }
    if (newest > newestSeen.current) {
      // Scrolled up when messages arrive: offer to jump to them.
      if (!stick.current && placed.current) setBelow((n) => n + countAfter(thread.messages, newestSeen.current));
      newestSeen.current = newest;
    }
  }, [thread.messages, thread.pending, thread.loaded, typingUsers.length]);

  const jumpToNewest = () => {
    const el = listRef.current;
    if (!el) return;
    stick.current = true;
    el.scrollTop = el.scrollHeight;
    setBelow(0);
    // The button goes away: the focus goes to the messages it scrolled.
    el.focus();
  };

  const onScroll = async () => {
    const el = listRef.current;
    if (!el) return;
    stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
    if (stick.current && below) setBelow(0);
    if (el.scrollTop < 80 && thread.hasMore && !loadingOlder.current) {
      loadingOlder.current = true;
      prevHeight.current = el.scrollHeight;
      const n = await store.loadOlder(c.id);
      if (n === 0) prevHeight.current = null;
      loadingOlder.current = false;
    }
  };

  // "Seen": the newest message of mine that others have read.
  const myMsgs = thread.messages.filter((m) => m.senderId === me.id);
  const lastMine = myMsgs[myMsgs.length - 1];
  const seenBy = lastMine ? store.seenBy(c.id, lastMine.seq) : [];

  const items: preact.JSX.Element[] = [];
  let lastDay = '';
  let prevSender = '';
  for (const m of thread.messages) {
    const day = dayKey(m.createdAt);
    if (day !== lastDay) {
      items.push(
        <li key={'d' + day} class="day" role="separator" aria-label={dayLabel(m.createdAt)}>
          <span>{dayLabel(m.createdAt)}</span>
        </li>,
      );
      lastDay = day;
      prevSender = '';
    }
    if (m.seq === divider) {
      items.push(
        <li key="new" ref={dividerRef} class="new-divider" role="separator" aria-label="New messages" data-testid="new-divider">
          <span>New messages</span>
        </li>,
      );
      prevSender = '';
    }
    const mine = m.senderId === me.id;
    items.push(
      <MessageItem
        key={m.id}
        m={m}
        mine={mine}
        sender={c.kind === 'group' && !mine && prevSender !== m.senderId ? memberName(c, m.senderId) : null}
        seen={m === lastMine && seenBy.length > 0 ? (c.kind === 'direct' ? 'Seen' : 'Seen by ' + seenBy.map((u) => memberName(c, u)).join(', ')) : null}
      />,
    );
    prevSender = m.senderId;
  }
  for (const p of thread.pending) {
    items.push(<PendingItem key={p.clientId} p={p} onRetry={() => store.retry(c.id, p.clientId)} onDiscard={() => store.discard(c.id, p.clientId)} />);
  }

  return (
    <main class="pane" aria-labelledby="conv-title">
      <header class="pane-head">
        <button type="button" class="btn-icon back" aria-label="Back to conversations" onClick={() => navigate(null)}>
          ‹
        </button>
        <Avatar name={title} id={c.kind === 'direct' ? (c.members.find((m) => m.id !== me.id)?.id ?? c.id) : c.id} online={c.kind === 'direct' ? !!c.members.find((m) => m.id !== me.id)?.online : undefined} />
        <div class="pane-title">
          <h2 id="conv-title">{title}</h2>
          <span class="muted small" data-testid="conv-subtitle">
            {subtitle(c, me.id)}
          </span>
        </div>
        {c.kind === 'group' && (
          <button type="button" class="btn" onClick={() => setShowMembers(true)}>
            Members
          </button>
        )}
      </header>
      <div class="messages-wrap">
        <div class="messages" ref={listRef} onScroll={onScroll} tabIndex={0} aria-label={`Messages with ${title}`}>
          {thread.hasMore && <p class="muted center small">Scroll up for older messages</p>}
          {thread.loaded && thread.messages.length === 0 && thread.pending.length === 0 && <p class="muted center">No messages yet. Say hello!</p>}
          <ol class="msg-list" role="log" aria-live="polite" aria-relevant="additions">
            {items}
          </ol>
        </div>
        {below > 0 && (
          <button
            type="button"
            class="btn jump-newest"
            onClick={jumpToNewest}
            data-testid="jump-newest"
            aria-label={`${below === 1 ? '1 new message' : `${below} new messages`}, jump to newest`}
          >
            <span aria-hidden="true">↓</span> {below === 1 ? '1 new message' : `${below} new messages`}
          </button>
        )}
      </div>
      <div class="typing-line" aria-live="polite" data-testid="typing">
        {typingUsers.length > 0 && typingText(typingUsers.map((u) => memberName(c, u)))}
      </div>
      <Composer store={store} conversationId={c.id} onSent={() => (stick.current = true)} />
      {showMembers && <MembersDialog store={store} c={c} onClose={() => setShowMembers(false)} />}
    </main>
  );
}

function typingText(names: string[]): string {
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  return 'Several people are typing…';
}

function Body({ text }: { text: string }) {
  // Text only: Preact puts strings in text nodes; links are http(s) only.
  return (
    <>
      {linkify(text).map((part, i) =>
        part.href ? (
          <a key={i} href={part.href} target="_blank" rel="noopener noreferrer">
            {part.text}
          </a>
        ) : (
          part.text
        ),
      )}
    </>
  );
}

function MessageItem({ m, mine, sender, seen }: { m: Message; mine: boolean; sender: string | null; seen: string | null }) {
  return (
    <li class={'msg' + (mine ? ' mine' : '')} data-seq={m.seq} data-testid="message">
      {sender && <span class="msg-sender">{sender}</span>}
      <div class="bubble">
        <p class="msg-body">
          <Body text={m.body} />
        </p>
        <span class="msg-meta">
          <time dateTime={m.createdAt}>{timeShort(m.createdAt)}</time>
        </span>
      </div>
      {seen && (
        <span class="seen" data-testid="seen">
          {seen}
        </span>
      )}
    </li>
  );
}

function PendingItem({ p, onRetry, onDiscard }: { p: Pending; onRetry: () => void; onDiscard: () => void }) {
  return (
    <li class={'msg mine ' + p.status} data-testid="message" data-status={p.status}>
      <div class="bubble">
        <p class="msg-body">
          <Body text={p.body} />
        </p>
        <span class="msg-meta">{p.status === 'pending' ? 'Sending…' : 'Not sent'}</span>
      </div>
      {p.status === 'failed' && (
        <div class="failed-row" role="alert">
          <span>{p.error}</span>
          <button type="button" class="btn btn-small" onClick={onRetry}>
            Retry
          </button>
          <button type="button" class="btn btn-small btn-ghost" onClick={onDiscard}>
            Discard
          </button>
        </div>
      )}
    </li>
  );
}

const MAX_CHARS = 4000;

function Composer({ store, conversationId, onSent }: { store: ChatStore; conversationId: string; onSent: () => void }) {
  // The draft of this conversation, kept by the store (across switching and reloads).
  const [text, setText] = useState(() => store.draft(conversationId));
  const ref = useRef<HTMLTextAreaElement>(null);
  useEffect(() => {
    if (window.matchMedia('(min-width: 760px)').matches) ref.current?.focus();
  }, [conversationId]);
  const chars = [...text].length;
  const tooLong = chars > MAX_CHARS;
  const submit = (e?: Event) => {
    e?.preventDefault();
    if (!text.trim() || tooLong) return;
    onSent();
    store.send(conversationId, text);
    setText('');
    ref.current?.focus();
  };
  return (
    <form class="composer" onSubmit={submit}>
      <label for="composer-input" class="sr-only">
        Message
      </label>
      <textarea
        id="composer-input"
        ref={ref}
        rows={1}
        placeholder="Write a message"
        value={text}
        aria-describedby="composer-hint"
        aria-invalid={tooLong}
        onInput={(e) => {
          setText(e.currentTarget.value);
          store.setDraft(conversationId, e.currentTarget.value);
          if (e.currentTarget.value.trim()) store.typed(conversationId);
        }}
        onKeyDown={(e) => {
          if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
            e.preventDefault();
            submit();
          }
        }}
      />
      <button type="submit" class="btn btn-primary" disabled={!text.trim() || tooLong}>
        Send
      </button>
      <p id="composer-hint" class={'sr-only' + (chars > MAX_CHARS - 500 ? ' counter' : '')} aria-live="polite">
        {chars > MAX_CHARS - 500 ? (tooLong ? `Too long: ${chars} of ${MAX_CHARS} characters` : `${chars} of ${MAX_CHARS} characters`) : 'Enter sends, Shift+Enter starts a new line'}
      </p>
    </form>
  );
}

function MembersDialog({ store, c, onClose }: { store: ChatStore; c: Conversation; onClose: () => void }) {
  const me = store.me.value!;
  const myRole = c.members.find((m) => m.id === me.id)?.role ?? 'member';
  const canManage = myRole === 'owner' || myRole === 'admin';
  const [error, setError] = useState('');
  const remove = async (m: Member) => {
    setError('');
    try {
      await store.removeMember(c.id, m.id);
      if (m.id === me.id) onClose();
    } catch (e) {
      setError(describeError(e, 'members'));
    }
  };
  return (
    <Modal title={`Members of ${conversationTitle(c, me.id)}`} onClose={onClose}>
      <ul class="people">
        {c.members.map((m) => (
          <li key={m.id} class="member-row">
            <Avatar name={m.displayName || m.username} id={m.id} online={!!m.online} />
            <span class="person-text">
              <span class="person-name">
                {m.displayName || m.username}
                {m.id === me.id ? ' (you)' : ''}
              </span>
              <span class="muted">
                @{m.username}
                {m.role !== 'member' ? ` · ${m.role}` : ''}
                {m.online ? ' · online' : ''}
              </span>
            </span>
            {m.id === me.id ? (
              <button type="button" class="btn btn-small" onClick={() => void remove(m)}>
                Leave
              </button>
            ) : (
              canManage &&
              m.role !== 'owner' && (
                <button type="button" class="btn btn-small" aria-label={`Remove ${m.displayName || m.username}`} onClick={() => void remove(m)}>
                  Remove
                </button>
              )
            )}
          </li>
        ))}
      </ul>
      {error && (
        <p class="form-error" role="alert">
          {error}
        </p>
      )}
      {canManage && (
        <UserSearch
          store={store}
          label="Add people"
          exclude={new Set(c.members.map((m) => m.id))}
          actionLabel={(u) => `Add ${u.displayName || u.username} (@${u.username})`}
          onPick={async (u) => {
            setError('');
            try {
              await store.addMember(c.id, u.id);
            } catch (e) {
              setError(describeError(e, 'members'));
            }
          }}
        />
      )}
    </Modal>
  );
}
