import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { describeError } from '../errors';
import { conversationTitle, type ChatStore } from '../store';
import { countAfter, dayKey, dayLabel, dividerBefore, linkify, type Pending, type SettingNotice } from '../thread';
import type { Conversation, Member, Message, Reaction, ReplyRef } from '../types';
import { Avatar, Modal, timeShort, UserSearch } from './common';
import { EmojiPicker, EXPIRE_CHOICES, expireLabel, Icon, peopleList, QUICK_REACTIONS, ReactionChips } from './MessageParts';

/** How long after sending a message can be edited (the server's default -edit-window). */
const EDIT_WINDOW_MS = 24 * 3600 * 1000;

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
  const [replyTo, setReplyTo] = useState<Message | null>(null);
  const [editing, setEditing] = useState<Message | null>(null);
  const [deleting, setDeleting] = useState<Message | null>(null);
  const [showExpiry, setShowExpiry] = useState(false);
  const [highlight, setHighlight] = useState<string | null>(null);
  // The message with the keyboard focus: only its buttons are in the Tab order, so the list
  // stays one stop on the way to the composer (Up and Down move between messages).
  const [activeMsg, setActiveMsg] = useState<string | null>(null);
  const onListKey = (e: KeyboardEvent) => {
    if (e.key !== 'ArrowUp' && e.key !== 'ArrowDown') return;
    const target = e.target as HTMLElement;
    if (target.closest('.emoji-picker')) return;
    const list = listRef.current;
    if (!list) return;
    const items = [...list.querySelectorAll<HTMLElement>('[data-testid=message][data-id]')];
    if (items.length === 0) return;
    const cur = target.closest<HTMLElement>('[data-testid=message][data-id]');
    const i = cur ? items.indexOf(cur) : -1;
    const next = i < 0 ? (e.key === 'ArrowUp' ? items.length - 1 : 0) : Math.max(0, Math.min(items.length - 1, i + (e.key === 'ArrowUp' ? -1 : 1)));
    e.preventDefault();
    items[next].focus({ preventScroll: true });
    items[next].scrollIntoView({ block: 'nearest' });
  };
  const myRole = c.members.find((m) => m.id === me.id)?.role ?? 'member';
  const canModerate = c.kind === 'group' && (myRole === 'owner' || myRole === 'admin');
  const canSetExpiry = c.kind === 'direct' || canModerate;
  const canEdit = (m: Message) => m.senderId === me.id && !m.deleted && !m.undecryptable && Date.now() - Date.parse(m.createdAt) < EDIT_WINDOW_MS;
  const canDelete = (m: Message) => !m.deleted && (m.senderId === me.id || canModerate);
  const reactors = store.reactors.value;
  const whoReacted = (m: Message, r: Reaction): string => {
    // The server gives counts; who is known for me, in a direct conversation, and from live frames.
    if (c.kind === 'direct') {
      const other = c.members.find((x) => x.id !== me.id);
      if (r.count >= 2) return peopleList(['You', other ? memberName(c, other.id) : 'them'], 0);
      return r.me ? 'You' : other ? memberName(c, other.id) : '1 person';
    }
    const known = new Set((reactors[m.id]?.[r.emoji] ?? []).filter((u) => u !== me.id));
    const names = [...(r.me ? ['You'] : []), ...[...known].map((u) => memberName(c, u))];
    if (names.length === 0) return r.count === 1 ? '1 person' : `${r.count} people`;
    return peopleList(names, Math.max(0, r.count - names.length));
  };
  const react = (m: Message, emoji: string, remove: boolean) => {
    store.react(c.id, m.id, emoji, remove).catch((e) => (store.notice.value = describeError(e, 'change')));
  };
  /** Shows the original of a reply: loads older pages until it is there, then scrolls to it. */
  const jumpTo = async (ref: ReplyRef) => {
    for (let i = 0; i < 40 && !store.thread(c.id).messages.some((m) => m.id === ref.id); i++) {
      const t = store.thread(c.id);
      if (!t.hasMore || (t.messages[0]?.seq ?? 0) <= ref.seq) break;
      prevHeight.current = listRef.current?.scrollHeight ?? null;
      if ((await store.loadOlder(c.id)) === 0) break;
    }
    requestAnimationFrame(() => {
      const el = listRef.current?.querySelector<HTMLElement>(`[data-id="${CSS.escape(ref.id)}"]`);
      if (!el) {
        store.notice.value = 'The original message is not available any more.';
        return;
      }
      stick.current = false;
      el.scrollIntoView({ block: 'center' });
      el.focus({ preventScroll: true });
      setHighlight(ref.id);
      setTimeout(() => setHighlight((h) => (h === ref.id ? null : h)), 2000);
    });
  };
  const lastEditable = () => {
    for (let i = thread.messages.length - 1; i >= 0; i--) {
      const m = thread.messages[i];
      if (m.senderId === me.id && !m.deleted) return canEdit(m) ? m : null;
    }
    return null;
  };

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
  const notices = thread.notices ?? [];
  let ni = 0;
  const pushNotices = (upTo: number) => {
    for (; ni < notices.length && notices[ni].seq < upTo; ni++) {
      items.push(<SettingLine key={'n' + notices[ni].seq} n={notices[ni]} who={notices[ni].changedBy === me.id ? 'You' : memberName(c, notices[ni].changedBy)} />);
      prevSender = '';
    }
  };
  for (const m of thread.messages) {
    pushNotices(m.seq);
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
        highlighted={highlight === m.id}
        quoteName={m.replyTo ? (m.replyTo.senderId === me.id ? 'You' : memberName(c, m.replyTo.senderId)) : ''}
        canEdit={canEdit(m)}
        canDelete={canDelete(m)}
        active={activeMsg === m.id}
        whoReacted={(r) => whoReacted(m, r)}
        onReact={(emoji, remove) => react(m, emoji, remove)}
        onReply={() => {
          setEditing(null);
          setReplyTo(m);
        }}
        onEdit={() => {
          setReplyTo(null);
          setEditing(m);
        }}
        onDelete={() => setDeleting(m)}
        onQuote={() => m.replyTo && void jumpTo(m.replyTo)}
      />,
    );
    prevSender = m.senderId;
  }
  pushNotices(Infinity);
  for (const p of thread.pending) {
    items.push(
      <PendingItem
        key={p.clientId}
        p={p}
        quoteName={p.replyTo ? (p.replyTo.senderId === me.id ? 'You' : memberName(c, p.replyTo.senderId)) : ''}
        onRetry={() => store.retry(c.id, p.clientId)}
        onDiscard={() => store.discard(c.id, p.clientId)}
      />,
    );
  }
  const expireAfter = c.expireAfter ?? 0;

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
        <button
          type="button"
          class={'btn btn-small expiry-btn' + (expireAfter ? ' on' : '')}
          onClick={() => setShowExpiry(true)}
          aria-label={`Disappearing messages: ${expireAfter ? expireLabel(expireAfter) : 'off'}`}
          data-testid="expiry-button"
        >
          <Icon name="timer" />
          <span class="expiry-text">{expireAfter ? expireLabel(expireAfter) : 'Off'}</span>
        </button>
        {c.kind === 'group' && (
          <button type="button" class="btn" onClick={() => setShowMembers(true)}>
            Members
          </button>
        )}
      </header>
      {expireAfter > 0 && (
        <p class="expiry-notice" role="status" data-testid="expiry-notice">
          <Icon name="timer" /> Disappearing messages are on: new messages disappear {expireLabel(expireAfter)} after they are sent.
        </p>
      )}
      <div class="messages-wrap">
        <div
          class="messages"
          ref={listRef}
          onScroll={onScroll}
          tabIndex={0}
          aria-label={`Messages with ${title}`}
          aria-describedby="messages-hint"
          onKeyDown={onListKey}
          onFocusCapture={(e) => {
            const li = (e.target as Element).closest('[data-testid=message][data-id]');
            setActiveMsg(li ? li.getAttribute('data-id') : null);
          }}
        >
          <p id="messages-hint" class="sr-only">
            Up and Down arrows move between messages; Tab then reaches the message's reactions, reply, edit and delete.
          </p>
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
      <Composer
        store={store}
        conversationId={c.id}
        onSent={() => (stick.current = true)}
        replyTo={replyTo}
        replyName={replyTo ? (replyTo.senderId === me.id ? 'yourself' : memberName(c, replyTo.senderId)) : ''}
        onCancelReply={() => setReplyTo(null)}
        editing={editing}
        onEditDone={() => setEditing(null)}
        onEditLast={() => {
          const m = lastEditable();
          if (m) {
            setReplyTo(null);
            setEditing(m);
          }
          return !!m;
        }}
      />
      {showMembers && <MembersDialog store={store} c={c} onClose={() => setShowMembers(false)} />}
      {showExpiry && <ExpiryDialog store={store} c={c} canChange={canSetExpiry} onClose={() => setShowExpiry(false)} />}
      {deleting && (
        <Modal title="Delete message?" onClose={() => setDeleting(null)}>
          <p>{deleting.senderId === me.id ? 'It will be deleted for everyone in this conversation.' : `This message by ${memberName(c, deleting.senderId)} will be deleted for everyone in this conversation.`}</p>
          <blockquote class="delete-preview">{deleting.body}</blockquote>
          <div class="modal-actions">
            <button type="button" class="btn" onClick={() => setDeleting(null)}>
              Cancel
            </button>
            <button
              type="button"
              class="btn btn-danger"
              onClick={() => {
                const m = deleting;
                setDeleting(null);
                if (editing?.id === m.id) setEditing(null);
                if (replyTo?.id === m.id) setReplyTo(null);
                store.deleteMessage(c.id, m.id).catch((e) => (store.notice.value = describeError(e, 'change')));
              }}
            >
              Delete for everyone
            </button>
          </div>
        </Modal>
      )}
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

interface ItemProps {
  m: Message;
  mine: boolean;
  sender: string | null;
  seen: string | null;
  highlighted: boolean;
  quoteName: string;
  canEdit: boolean;
  canDelete: boolean;
  whoReacted: (r: Reaction) => string;
  onReact: (emoji: string, remove: boolean) => void;
  onReply: () => void;
  onEdit: () => void;
  onDelete: () => void;
  onQuote: () => void;
  /** It has the keyboard focus: its buttons are in the Tab order. */
  active: boolean;
}

function Quote({ r, name, onClick, tabIndex }: { r: ReplyRef; name: string; onClick?: () => void; tabIndex?: number }) {
  const text = r.deleted ? 'Message deleted' : r.excerpt;
  const inner = (
    <>
      <span class="quote-name">{name}</span>
      <span class={'quote-text' + (r.deleted ? ' gone' : '')}>{text}</span>
    </>
  );
  if (!onClick) return <span class="quote">{inner}</span>;
  return (
    <button type="button" class="quote" onClick={onClick} tabIndex={tabIndex} aria-label={`Reply to ${name}: ${text}. Show the original message`} data-testid="quote">
      {inner}
    </button>
  );
}

function MessageItem(p: ItemProps) {
  const { m, mine } = p;
  const [actions, setActions] = useState(false);
  const [picker, setPicker] = useState(false);
  const [up, setUp] = useState(false);
  const [below, setBelow] = useState(false);
  const liRef = useRef<HTMLLIElement>(null);
  const reactBtn = useRef<HTMLButtonElement>(null);
  const press = useRef<ReturnType<typeof setTimeout> | null>(null);
  const longPressed = useRef(false);
  // A touch outside closes the actions opened by a long press.
  useEffect(() => {
    if (!actions) return;
    const outside = (e: PointerEvent) => {
      if (liRef.current && !liRef.current.contains(e.target as Node)) setActions(false);
    };
    document.addEventListener('pointerdown', outside, true);
    return () => document.removeEventListener('pointerdown', outside, true);
  }, [actions]);
  const gone = !!m.deleted;
  const tab = p.active || picker ? 0 : -1;
  const mineSet = new Set((m.reactions ?? []).filter((r) => r.me).map((r) => r.emoji));
  const closePicker = () => {
    setPicker(false);
    reactBtn.current?.focus();
  };
  const endPress = () => {
    if (press.current) clearTimeout(press.current);
    press.current = null;
  };
  return (
    <li
      ref={liRef}
      class={'msg' + (mine ? ' mine' : '') + (gone ? ' gone' : '') + (actions || picker ? ' actions-open' : '') + (actions && below ? ' actions-below' : '') + (p.highlighted ? ' highlight' : '')}
      data-seq={m.seq}
      data-id={m.id}
      data-testid="message"
      tabIndex={-1}
    >
      {p.sender && <span class="msg-sender">{p.sender}</span>}
      <div
        class="bubble"
        onPointerDown={(e) => {
          if (e.pointerType !== 'touch' || gone) return;
          longPressed.current = false;
          endPress();
          press.current = setTimeout(() => {
            longPressed.current = true;
            // Near the top of the list the toolbar goes below the bubble, where it can be seen.
            const li = liRef.current;
            const box = li?.closest('.messages')?.getBoundingClientRect();
            setBelow(!!li && !!box && li.getBoundingClientRect().top - box.top < 56);
            setActions(true);
          }, 500);
        }}
        onPointerUp={endPress}
        onPointerCancel={endPress}
        onPointerMove={(e) => {
          if (e.pointerType === 'touch' && (Math.abs(e.movementX) > 4 || Math.abs(e.movementY) > 4)) endPress();
        }}
        onContextMenu={(e) => {
          // A long press opens the actions, not the browser's menu.
          if (longPressed.current) e.preventDefault();
        }}
      >
        {m.replyTo && !gone && <Quote r={m.replyTo} name={p.quoteName} onClick={p.onQuote} tabIndex={tab} />}
        {gone ? (
          <p class="msg-body msg-deleted" data-testid="deleted">
            {m.deleted!.reason === 'expired' ? 'This message disappeared' : 'Message deleted'}
          </p>
        ) : m.undecryptable ? (
          <p class="msg-body msg-deleted">This message cannot be shown.</p>
        ) : (
          <p class="msg-body">
            <Body text={m.body} />
          </p>
        )}
        <span class="msg-meta">
          {m.expiresAt && !gone && (
            <span class="expires" title={`Disappears ${new Date(m.expiresAt).toLocaleString()}`} data-testid="expires">
              <Icon name="timer" />
              <span class="sr-only">Disappears {new Date(m.expiresAt).toLocaleString()}</span>{' '}
            </span>
          )}
          {m.editedAt && !gone && (
            <span class="edited" data-testid="edited">
              edited ·{' '}
            </span>
          )}
          <time dateTime={m.createdAt}>{timeShort(m.createdAt)}</time>
        </span>
      </div>
      {!gone && (
        <div class="msg-actions" role="toolbar" aria-label="Message actions">
          {QUICK_REACTIONS.slice(0, 3).map(([e, name]) => (
            <button key={e} type="button" class="btn-icon act quick" tabIndex={tab} aria-label={`React with ${name}`} aria-pressed={mineSet.has(e)} onClick={() => p.onReact(e, mineSet.has(e))}>
              {e}
            </button>
          ))}
          <button
            type="button"
            class="btn-icon act"
            tabIndex={tab}
            ref={reactBtn}
            aria-label="React"
            aria-haspopup="dialog"
            aria-expanded={picker}
            onClick={() => {
              // Open towards the side with more room.
              const li = liRef.current;
              const box = li?.closest('.messages')?.getBoundingClientRect();
              if (li && box) setUp(li.getBoundingClientRect().top - box.top > box.height / 2);
              setPicker((x) => !x);
            }}
          >
            <Icon name="react" />
          </button>
          <button type="button" class="btn-icon act" tabIndex={tab} aria-label="Reply" onClick={() => { setActions(false); p.onReply(); }}>
            <Icon name="reply" />
          </button>
          {p.canEdit && (
            <button type="button" class="btn-icon act" tabIndex={tab} aria-label="Edit" onClick={() => { setActions(false); p.onEdit(); }}>
              <Icon name="edit" />
            </button>
          )}
          {p.canDelete && (
            <button type="button" class="btn-icon act danger" tabIndex={tab} aria-label="Delete" onClick={() => { setActions(false); p.onDelete(); }}>
              <Icon name="delete" />
            </button>
          )}
        </div>
      )}
      {picker && (
        <EmojiPicker
          up={up}
          mine={mineSet}
          onClose={closePicker}
          onPick={(e) => {
            p.onReact(e, mineSet.has(e));
            setActions(false);
            closePicker();
          }}
        />
      )}
      {!gone && m.reactions && m.reactions.length > 0 && <ReactionChips tabIndex={tab} reactions={m.reactions} who={p.whoReacted} onToggle={(r) => p.onReact(r.emoji, r.me)} />}
      {p.seen && (
        <span class="seen" data-testid="seen">
          {p.seen}
        </span>
      )}
    </li>
  );
}

function SettingLine({ n, who }: { n: SettingNotice; who: string }) {
  return (
    <li class="system-line" role="note" data-testid="setting-notice">
      <Icon name="timer" />{' '}
      {n.expireAfter ? `${who} turned on disappearing messages: ${expireLabel(n.expireAfter)}.` : `${who} turned off disappearing messages.`}
    </li>
  );
}

function PendingItem({ p, quoteName, onRetry, onDiscard }: { p: Pending; quoteName: string; onRetry: () => void; onDiscard: () => void }) {
  return (
    <li class={'msg mine ' + p.status} data-testid="message" data-status={p.status}>
      <div class="bubble">
        {p.replyTo && <Quote r={p.replyTo} name={quoteName} />}
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

interface ComposerProps {
  store: ChatStore;
  conversationId: string;
  onSent: () => void;
  replyTo: Message | null;
  replyName: string;
  onCancelReply: () => void;
  editing: Message | null;
  onEditDone: () => void;
  /** Up arrow in an empty composer: edit my last message. False when there is none. */
  onEditLast: () => boolean;
}

function Composer({ store, conversationId, onSent, replyTo, replyName, onCancelReply, editing, onEditDone, onEditLast }: ComposerProps) {
  // The draft of this conversation, kept by the store (across switching and reloads).
  const [text, setText] = useState(() => store.draft(conversationId));
  // The text being edited; the draft waits meanwhile.
  const [editText, setEditText] = useState('');
  const [busy, setBusy] = useState(false);
  const ref = useRef<HTMLTextAreaElement>(null);
  useEffect(() => {
    if (window.matchMedia('(min-width: 760px)').matches) ref.current?.focus();
  }, [conversationId]);
  useEffect(() => {
    if (editing) setEditText(editing.body);
    if (editing || replyTo) {
      ref.current?.focus();
      // The caret at the end of the text to edit.
      requestAnimationFrame(() => {
        const el = ref.current;
        if (el) el.selectionStart = el.selectionEnd = el.value.length;
      });
    }
  }, [editing?.id, replyTo?.id]);
  const value = editing ? editText : text;
  const chars = [...value].length;
  const tooLong = chars > MAX_CHARS;
  const cancel = () => {
    if (editing) onEditDone();
    else if (replyTo) onCancelReply();
    ref.current?.focus();
  };
  const submit = async (e?: Event) => {
    e?.preventDefault();
    if (!value.trim() || tooLong || busy) return;
    if (editing) {
      if (editText === editing.body) {
        onEditDone();
        return;
      }
      setBusy(true);
      try {
        await store.edit(conversationId, editing.id, editText);
        onEditDone();
      } catch (err) {
        store.notice.value = describeError(err, 'change');
      } finally {
        setBusy(false);
        ref.current?.focus();
      }
      return;
    }
    onSent();
    store.send(conversationId, text, replyTo ?? undefined);
    if (replyTo) onCancelReply();
    setText('');
    ref.current?.focus();
  };
  return (
    <form class={'composer' + (editing || replyTo ? ' with-context' : '')} onSubmit={(e) => void submit(e)}>
      {(editing || replyTo) && (
        <div class="composer-context" data-testid={editing ? 'editing-bar' : 'reply-bar'}>
          <span class="context-text">
            {editing ? (
              <strong>Editing your message</strong>
            ) : (
              <>
                <strong>Replying to {replyName}</strong>
                <span class="muted"> {replyTo!.body}</span>
              </>
            )}
          </span>
          <button type="button" class="btn-icon" aria-label={editing ? 'Cancel editing' : 'Cancel reply'} onClick={cancel}>
            ×
          </button>
        </div>
      )}
      <label for="composer-input" class="sr-only">
        {editing ? 'Edit message' : 'Message'}
      </label>
      <textarea
        id="composer-input"
        ref={ref}
        rows={1}
        placeholder={editing ? 'Edit your message' : 'Write a message'}
        value={value}
        aria-describedby="composer-hint"
        aria-invalid={tooLong}
        onInput={(e) => {
          const v = e.currentTarget.value;
          if (editing) {
            setEditText(v);
            return;
          }
          setText(v);
          store.setDraft(conversationId, v);
          if (v.trim()) store.typed(conversationId);
        }}
        onKeyDown={(e) => {
          if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
            e.preventDefault();
            void submit();
          } else if (e.key === 'Escape' && (editing || replyTo)) {
            e.preventDefault();
            cancel();
          } else if (e.key === 'ArrowUp' && !editing && text === '' && !e.isComposing) {
            if (onEditLast()) e.preventDefault();
          }
        }}
      />
      <button type="submit" class="btn btn-primary" disabled={!value.trim() || tooLong || busy}>
        {editing ? 'Save' : 'Send'}
      </button>
      <p id="composer-hint" class={'sr-only' + (chars > MAX_CHARS - 500 ? ' counter' : '')} aria-live="polite">
        {chars > MAX_CHARS - 500
          ? tooLong
            ? `Too long: ${chars} of ${MAX_CHARS} characters`
            : `${chars} of ${MAX_CHARS} characters`
          : editing
            ? 'Enter saves, Escape cancels'
            : 'Enter sends, Shift+Enter starts a new line, Up arrow edits your last message'}
      </p>
    </form>
  );
}

function ExpiryDialog({ store, c, canChange, onClose }: { store: ChatStore; c: Conversation; canChange: boolean; onClose: () => void }) {
  const [value, setValue] = useState(c.expireAfter ?? 0);
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const save = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      await store.setExpireAfter(c.id, value);
      onClose();
    } catch (err) {
      setError(describeError(err, 'settings'));
    } finally {
      setBusy(false);
    }
  };
  return (
    <Modal title="Disappearing messages" onClose={onClose}>
      <form onSubmit={(e) => void save(e)} class="expiry-form">
        <p class="muted">New messages are deleted for everyone this long after they are sent. Messages already sent keep their own time.</p>
        {!canChange && <p class="muted">Only the group's owner or admins can change this.</p>}
        <fieldset disabled={!canChange || busy}>
          <legend class="sr-only">Delete new messages after</legend>
          {EXPIRE_CHOICES.map(([s, label]) => (
            <label key={s} class="radio-row">
              <input type="radio" name="expire" value={s} checked={value === s} onChange={() => setValue(s)} />
              {label}
            </label>
          ))}
        </fieldset>
        {error && (
          <p class="form-error" role="alert">
            {error}
          </p>
        )}
        <div class="modal-actions">
          <button type="button" class="btn" onClick={onClose}>
            Cancel
          </button>
          {canChange && (
            <button type="submit" class="btn btn-primary" disabled={busy}>
              Save
            </button>
          )}
        </div>
      </form>
    </Modal>
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
