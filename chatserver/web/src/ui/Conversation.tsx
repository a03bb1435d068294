import { memo } from 'preact/compat';
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from 'preact/hooks';
import { renameConversation } from '../api';
import { canSend, MAX_ATTACHMENTS, previewText, readyAttachments } from '../attachments';
import { describeError } from '../errors';
import { insertMention, mentionState, type MentionState } from '../notify';
import { linkTarget, messagePath } from '../links';
import { textDirection } from '../markdown';
import { conversationTitle, type ChatStore } from '../store';
import { countAfter, dayKey, dayLabel, dividerBefore, indexFromSeq, windowRange, type Pending, type SettingNotice } from '../thread';
import type { Conversation, Member, Message, Reaction, ReplyRef } from '../types';
import { Avatar, Modal, UserSearch } from './common';
import { EmojiPicker, EXPIRE_CHOICES, expireLabel, Icon, peopleList, QUICK_REACTIONS, ReactionChips } from './MessageParts';
import { AttachmentList, UploadChips, VoiceRecorder } from './Attachments';
import { MentionList, MuteMenu } from './Notifications';
import { DeviceChangeWarning, LockMark, SafetyDialog } from './Encryption';
import { RichText } from './Rich';
import './conversation.css';

/** How long after sending a message can be edited (the server's default -edit-window). */
const EDIT_WINDOW_MS = 24 * 3600 * 1000;

/**
 * The message list is windowed: only a part of the history held is in the DOM (a long
 * history would otherwise cost every update a re-render of thousands of nodes). At the
 * newest end it keeps up to TAIL messages; scrolling near an edge adds CHUNK on that side
 * (from memory, or a page from the server at the top) and leaves out the far side beyond MAX.
 */
const TAIL = 50;
/** Going to the newest from far back starts with this few (the window grows as it is used). */
const JUMP = 20;
const CHUNK = 25;
const MAX = 150;
/** How close (px) to an edge of what is rendered scrolling adds more. */
const EDGE = 400;

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

/** What a message's toolbar does; one object per view, so the items' props stay equal across renders. */
interface Actions {
  react: (m: Message, emoji: string, remove: boolean) => void;
  reply: (m: Message) => void;
  edit: (m: Message) => void;
  remove: (m: Message) => void;
  quote: (m: Message) => void;
  copyLink: (m: Message) => void;
  whoReacted: (m: Message, r: Reaction) => string;
}

/** Typing notices re-render this line only, not the conversation. */
function TypingLine({ store, c, myId }: { store: ChatStore; c: Conversation; myId: string }) {
  const typingUsers = Object.keys(store.typing.value[c.id] ?? {}).filter((u) => u !== myId);
  return (
    <div class="typing-line" aria-live="polite" data-testid="typing">
      {typingUsers.length > 0 && typingText(typingUsers.map((u) => memberName(c, u)))}
    </div>
  );
}

function ConversationView({ store, c, navigate }: { store: ChatStore; c: Conversation; navigate: (id: string | null) => void }) {
  const me = store.me.value!;
  const thread = store.thread(c.id);
  const msgs = thread.messages;
  const title = conversationTitle(c, me.id);
  const byUsername = useMemo(() => new Map(c.members.map((x) => [x.username.toLowerCase(), x.id])), [c.members]);
  const [showMembers, setShowMembers] = useState(false);
  const listRef = useRef<HTMLDivElement>(null);
  const stick = useRef(true);
  /** Loading older pages (scrolling up, or going to a message): one at a time. */
  const busy = useRef(false);
  const dividerRef = useRef<HTMLDivElement>(null);
  const placed = useRef(false);
  // The newest seq the person has had in view, and how many arrived below since.
  const newestSeen = useRef(0);
  const [below, setBelow] = useState(0);
  const mark = store.readMark.value;
  const divider = mark && mark.conversationId === c.id ? dividerBefore(msgs, mark.seq, me.id) : null;
  const newest = msgs.length ? msgs[msgs.length - 1].seq : 0;
  const [replyTo, setReplyTo] = useState<Message | null>(null);
  const [editing, setEditing] = useState<Message | null>(null);
  const [deleting, setDeleting] = useState<Message | null>(null);
  const [showExpiry, setShowExpiry] = useState(false);
  /** The safety-number dialog: '' any member, a user id that member, null closed. */
  const [safety, setSafety] = useState<string | null>(null);
  void store.e2ee?.version.value; // re-render when the device joins, is removed, devices change
  const e2eeInfo = c.e2ee ? (store.e2ee?.info(c.id) ?? null) : null;
  const blocked = store.e2eeBlocked(c.id);
  const [highlight, setHighlight] = useState<string | null>(null);
  // The message with the keyboard focus: only its buttons are in the Tab order, so the list
  // stays one stop on the way to the composer (Up and Down move between messages).
  const [activeMsg, setActiveMsg] = useState<string | null>(null);
  // The window: messages from seq `from` to seq `to` (0: the oldest held; Infinity: the newest).
  const win = useRef({ from: 0, to: Infinity });
  const [, rerender] = useState(0);
  const force = () => rerender((n) => n + 1);
  /** A message kept at the same place on screen across the next render (content added or removed above it). */
  const anchor = useRef<{ id: string; off: number } | null>(null);
  /** After the next render: scroll to this message and highlight it. */
  const target = useRef<string | null>(null);
  /** After the next render: move the keyboard focus from this message by `delta`. */
  const pendingFocus = useRef<{ id: string; delta: number } | null>(null);
  // The latest message from someone else, read out by screen readers (the list itself is not
  // a live region: adding older messages to it as you scroll must not be announced).
  const [announce, setAnnounce] = useState('');
  // Files dragged over the conversation: they are attached when dropped.
  const [dragging, setDragging] = useState(false);
  const onDrag = (e: DragEvent) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    if (e.dataTransfer) e.dataTransfer.dropEffect = 'copy';
    if (!dragging) setDragging(true);
  };

  if (!placed.current && win.current.from === 0 && msgs.length > TAIL) {
    // Opening: the newest TAIL, or from a little before "New messages" when it is further back.
    const d = divider === null ? msgs.length : indexFromSeq(msgs, divider);
    win.current.from = msgs[Math.max(0, Math.min(d - 5, msgs.length - TAIL))].seq;
  }
  // Following the newest as messages arrive: the oldest of the window go out at the top for
  // good (only then: a window brought up by scrolling or the keyboard stays as it is).
  const growing = placed.current && stick.current && newest > newestSeen.current;
  const range = windowRange(msgs, win.current.from, win.current.to, growing ? TAIL : Infinity);
  if (growing && range.start > 0 && msgs[range.start].seq > win.current.from) win.current.from = msgs[range.start].seq;
  const shown = useRef(range);
  shown.current = range;
  const atEnd = range.end === msgs.length;

  const onListKey = (e: KeyboardEvent) => {
    if (e.key !== 'ArrowUp' && e.key !== 'ArrowDown') return;
    // Alt/Ctrl/Meta + arrows belong to the global shortcuts (Shortcuts.tsx: Alt+Up/Down).
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    const t = e.target as HTMLElement;
    if (t.closest('.emoji-picker')) return;
    const list = listRef.current;
    if (!list) return;
    const items = [...list.querySelectorAll<HTMLElement>('[data-testid=message][data-id]')];
    if (items.length === 0) return;
    const cur = t.closest<HTMLElement>('[data-testid=message][data-id]');
    const i = cur ? items.indexOf(cur) : -1;
    const up = e.key === 'ArrowUp';
    e.preventDefault();
    // At an edge of the window, with more beyond it: bring that in, then move.
    if (cur && i === 0 && up && (shown.current.start > 0 || store.thread(c.id).hasMore)) {
      pendingFocus.current = { id: cur.dataset.id!, delta: -1 };
      void extendUp();
      return;
    }
    if (cur && i === items.length - 1 && !up && win.current.to !== Infinity) {
      pendingFocus.current = { id: cur.dataset.id!, delta: 1 };
      extendDown();
      return;
    }
    const next = i < 0 ? (up ? items.length - 1 : 0) : Math.max(0, Math.min(items.length - 1, i + (up ? -1 : 1)));
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

  /** Remembers the first message in view and where it is, to keep it there across the next render. */
  const saveAnchor = () => {
    const el = listRef.current;
    if (!el) return;
    const top = el.getBoundingClientRect().top;
    for (const li of el.querySelectorAll<HTMLElement>('[data-testid=message][data-id]')) {
      const r = li.getBoundingClientRect();
      if (r.bottom > top) {
        anchor.current = { id: li.dataset.id!, off: r.top - top };
        return;
      }
    }
  };

  /** Brings CHUNK older messages into the window: held ones, else the next page from the server. */
  const extendUp = async () => {
    if (busy.current) return;
    let all = store.thread(c.id).messages;
    if (all.length === 0) return;
    const firstSeq = all[shown.current.start]?.seq ?? all[0].seq;
    if (shown.current.start === 0) {
      if (!store.thread(c.id).hasMore) return;
      busy.current = true;
      // The page waits outside the window until it is placed, with the view kept still.
      win.current.from = firstSeq;
      const n = await store.loadOlder(c.id);
      busy.current = false;
      if (n === 0) return;
      all = store.thread(c.id).messages;
    }
    const first = indexFromSeq(all, firstSeq);
    // Fewer than CHUNK left above would take one more step for a few messages: take them too.
    const start = first - CHUNK < CHUNK ? 0 : first - CHUNK;
    const end = win.current.to === Infinity ? all.length : indexFromSeq(all, win.current.to + 1);
    saveAnchor();
    win.current.from = all[start].seq;
    if (end - start > MAX) {
      win.current.to = all[start + MAX - 1].seq;
      stick.current = false;
    }
    force();
  };

  /** Brings CHUNK newer held messages into the window, up to the newest (then it follows them). */
  const extendDown = () => {
    const all = store.thread(c.id).messages;
    if (win.current.to === Infinity) return;
    let end = indexFromSeq(all, win.current.to + 1) + CHUNK;
    if (all.length - end < CHUNK) end = all.length;
    const start = Math.max(shown.current.start, end - MAX);
    saveAnchor();
    win.current = { from: all[start]?.seq ?? 0, to: end >= all.length ? Infinity : all[end - 1].seq };
    force();
  };

  /** The window at the newest messages, following them. */
  const toNewest = () => {
    const all = store.thread(c.id).messages;
    win.current = { from: all.length > JUMP ? all[all.length - JUMP].seq : 0, to: Infinity };
    stick.current = true;
    anchor.current = null;
    force();
  };

  /**
   * Shows a message (a reply's original, or a message link): loads older pages until it is
   * there, puts the window around it, scrolls to it and highlights it.
   */
  const jumpTo = async (id: string, seq = 0) => {
    const has = () => store.thread(c.id).messages.some((m) => m.id === id);
    if (!has()) {
      if (busy.current) return;
      busy.current = true;
      const held = store.thread(c.id).messages;
      // Pages load outside the window: the DOM stays small however far back it is.
      if (held.length) win.current.from = held[shown.current.start]?.seq ?? held[0].seq;
      try {
        for (let i = 0; i < 10_000 && !has(); i++) {
          const t = store.thread(c.id);
          if (!t.hasMore || (seq > 0 && (t.messages[0]?.seq ?? 0) <= seq)) break;
          if ((await store.loadOlder(c.id)) === 0) break;
        }
      } finally {
        busy.current = false;
      }
    }
    const all = store.thread(c.id).messages;
    const idx = all.findIndex((m) => m.id === id);
    if (idx < 0) {
      store.notice.value = 'That message is not available any more.';
      return;
    }
    const start = Math.max(0, idx - CHUNK);
    const end = Math.min(all.length, idx + CHUNK + 1);
    win.current = { from: all[start].seq, to: end >= all.length ? Infinity : all[end - 1].seq };
    stick.current = false;
    anchor.current = null;
    target.current = id;
    force();
  };

  const lastEditable = () => {
    for (let i = msgs.length - 1; i >= 0; i--) {
      const m = msgs[i];
      if (m.senderId === me.id && !m.deleted) return canEdit(m) ? m : null;
    }
    return null;
  };

  const actions = useRef<Actions>(null!);
  actions.current = {
    react: (m, emoji, remove) => {
      store.react(c.id, m.id, emoji, remove).catch((e) => (store.notice.value = describeError(e, 'change')));
    },
    reply: (m) => {
      setEditing(null);
      setReplyTo(m);
    },
    edit: (m) => {
      setReplyTo(null);
      setEditing(m);
    },
    remove: (m) => setDeleting(m),
    quote: (m) => m.replyTo && void jumpTo(m.replyTo.id, m.replyTo.seq),
    copyLink: (m) => {
      const url = location.origin + messagePath(c.id, m.id);
      navigator.clipboard.writeText(url).then(
        () => (store.notice.value = 'Link to the message copied.'),
        () => (store.notice.value = `Copy this link: ${url}`),
      );
    },
    whoReacted,
  };

  // After each render: the first placement, a kept anchor, the bottom when following it, a
  // message to show, a focus to move, and how many new messages arrived out of view.
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
    const a = anchor.current;
    anchor.current = null;
    if (target.current) {
      const t = el.querySelector<HTMLElement>(`[data-id="${CSS.escape(target.current)}"]`);
      const id = target.current;
      target.current = null;
      if (t) {
        t.scrollIntoView({ block: 'center' });
        t.focus({ preventScroll: true });
        setHighlight(id);
        setTimeout(() => setHighlight((h) => (h === id ? null : h)), 2000);
      }
    } else if (a) {
      const li = el.querySelector<HTMLElement>(`[data-id="${CSS.escape(a.id)}"]`);
      if (li) el.scrollTop += li.getBoundingClientRect().top - el.getBoundingClientRect().top - a.off;
    } else if (stick.current) {
      el.scrollTop = el.scrollHeight;
    }
    if (pendingFocus.current) {
      const items = [...el.querySelectorAll<HTMLElement>('[data-testid=message][data-id]')];
      const i = items.findIndex((x) => x.dataset.id === pendingFocus.current!.id);
      const next = i >= 0 ? items[i + pendingFocus.current.delta] : undefined;
      if (next) {
        pendingFocus.current = null;
        next.focus({ preventScroll: true });
        next.scrollIntoView({ block: 'nearest' });
      }
    }
    if (newest > newestSeen.current) {
      const fresh = msgs.filter((m) => m.seq > newestSeen.current && m.senderId !== me.id);
      if (fresh.length) {
        const m = fresh[fresh.length - 1];
        setAnnounce(`${memberName(c, m.senderId)}: ${m.deleted ? 'Message deleted' : previewText(m)}`);
      }
      // Scrolled up when messages arrive: offer to jump to them.
      if (!stick.current) setBelow((n) => n + countAfter(msgs, newestSeen.current));
      newestSeen.current = newest;
    }
  });

  // A shorter window (a phone keyboard opening) or taller content keeps the newest message
  // in view when the list was at the bottom.
  useEffect(() => {
    const el = listRef.current;
    if (!el || typeof ResizeObserver === 'undefined') return;
    const ro = new ResizeObserver(() => {
      if (stick.current) el.scrollTop = el.scrollHeight;
    });
    ro.observe(el);
    const list = el.querySelector('.msg-list');
    if (list) ro.observe(list);
    return () => ro.disconnect();
  }, []);

  // A message link opened for this conversation: show the message once the newest page is here.
  const link = linkTarget.value;
  useEffect(() => {
    if (!link || link.conversationId !== c.id || !thread.loaded) return;
    linkTarget.value = null;
    void jumpTo(link.messageId);
  }, [link, thread.loaded]);

  const jumpToNewest = () => {
    const el = listRef.current;
    if (!el) return;
    toNewest();
    setBelow(0);
    // The button goes away: the focus goes to the messages it scrolled.
    el.focus();
  };

  const onScroll = () => {
    const el = listRef.current;
    if (!el) return;
    stick.current = win.current.to === Infinity && el.scrollHeight - el.scrollTop - el.clientHeight < 40;
    if (stick.current && below) setBelow(0);
    if (el.scrollTop < EDGE) void extendUp();
    else if (el.scrollHeight - el.scrollTop - el.clientHeight < EDGE && win.current.to !== Infinity) extendDown();
  };

  // "Seen": the newest message of mine that others have read.
  let lastMine: Message | undefined;
  for (let i = msgs.length - 1; i >= 0 && !lastMine; i--) if (msgs[i].senderId === me.id) lastMine = msgs[i];
  const seenBy = lastMine ? store.seenBy(c.id, lastMine.seq) : [];

  const items: preact.JSX.Element[] = [];
  const before = range.start > 0 ? msgs[range.start - 1] : undefined;
  let lastDay = before ? dayKey(before.createdAt) : '';
  let prevSender = before?.senderId ?? '';
  const notices = thread.notices ?? [];
  let ni = 0;
  // Setting lines before the window's first message belong to messages out of the window.
  if (before) while (ni < notices.length && notices[ni].seq < before.seq) ni++;
  const pushNotices = (upTo: number) => {
    for (; ni < notices.length && notices[ni].seq < upTo; ni++) {
      items.push(<SettingLine key={'n' + notices[ni].seq} n={notices[ni]} who={notices[ni].changedBy === me.id ? 'You' : memberName(c, notices[ni].changedBy)} />);
      prevSender = '';
    }
  };
  for (let i = range.start; i < range.end; i++) {
    const m = msgs[i];
    pushNotices(m.seq);
    const day = dayKey(m.createdAt);
    if (day !== lastDay) {
      items.push(
        <div key={'d' + day} class="day" role="separator" aria-label={dayLabel(m.createdAt)}>
          <span>{dayLabel(m.createdAt)}</span>
        </div>,
      );
      lastDay = day;
      prevSender = '';
    }
    if (m.seq === divider) {
      items.push(
        <div key="new" ref={dividerRef} class="new-divider" role="separator" aria-label="New messages" data-testid="new-divider">
          <span>New messages</span>
        </div>,
      );
      prevSender = '';
    }
    const mine = m.senderId === me.id;
    items.push(
      <MessageItem
        key={m.id}
        m={m}
        conversationId={c.id}
        mine={mine}
        sender={c.kind === 'group' && !mine && prevSender !== m.senderId ? memberName(c, m.senderId) : null}
        seen={m === lastMine && seenBy.length > 0 ? (c.kind === 'direct' ? 'Seen' : 'Seen by ' + seenBy.map((u) => memberName(c, u)).join(', ')) : null}
        highlighted={highlight === m.id}
        quoteName={m.replyTo ? (m.replyTo.senderId === me.id ? 'You' : memberName(c, m.replyTo.senderId)) : ''}
        canEdit={canEdit(m)}
        canDelete={canDelete(m)}
        active={activeMsg === m.id}
        reactors={reactors[m.id]}
        actions={actions}
        store={store}
        byUsername={byUsername}
        meId={me.id}
        encrypted={!!c.e2ee}
      />,
    );
    prevSender = m.senderId;
  }
  if (atEnd) {
    pushNotices(Infinity);
    for (const p of thread.pending) {
      items.push(
        <PendingItem
          key={p.clientId}
          p={p}
          store={store}
          quoteName={p.replyTo ? (p.replyTo.senderId === me.id ? 'You' : memberName(c, p.replyTo.senderId)) : ''}
          onRetry={() => store.retry(c.id, p.clientId)}
          onDiscard={() => store.discard(c.id, p.clientId)}
        />,
      );
    }
  }
  const expireAfter = c.expireAfter ?? 0;

  return (
    <main
      class={'pane' + (dragging ? ' dragging' : '')}
      aria-labelledby="conv-title"
      onDragEnter={onDrag}
      onDragOver={onDrag}
      onDragLeave={(e) => {
        // Leaving for a child is not leaving.
        if (!e.relatedTarget || !(e.currentTarget as Element).contains(e.relatedTarget as Node)) setDragging(false);
      }}
      onDrop={(e) => {
        if (!hasFiles(e)) return;
        e.preventDefault();
        setDragging(false);
        attachFiles(store, c.id, [...(e.dataTransfer?.files ?? [])]);
      }}
    >
      {dragging && (
        <div class="drop-overlay" aria-hidden="true" data-testid="drop-overlay">
          <span>Drop files to send them</span>
        </div>
      )}
      <header class="pane-head">
        <button type="button" class="btn-icon back" aria-label="Back to conversations" onClick={() => navigate(null)}>
          ‹
        </button>
        <Avatar name={title} id={c.kind === 'direct' ? (c.members.find((m) => m.id !== me.id)?.id ?? c.id) : c.id} online={c.kind === 'direct' ? !!c.members.find((m) => m.id !== me.id)?.online : undefined} avatar={c.kind === 'direct' ? c.members.find((m) => m.id !== me.id)?.avatar : undefined} />
        <div class="pane-title">
          <h2 id="conv-title">
            {title}
            {c.e2ee && <LockMark />}
          </h2>
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
        <MuteMenu store={store} c={c} />
        {c.e2ee && (
          <button type="button" class="btn btn-small" onClick={() => setSafety('')} data-testid="verify-button">
            Verify
          </button>
        )}
        {c.kind === 'group' && (
          <button type="button" class="btn" onClick={() => setShowMembers(true)}>
            Members
          </button>
        )}
      </header>
      {c.e2ee && <DeviceChangeWarning store={store} c={c} onVerify={(id) => setSafety(id)} />}
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
          role="region"
          aria-label={`Messages with ${title}`}
          aria-describedby="messages-hint"
          onKeyDown={onListKey}
          onFocusCapture={(e) => {
            const li = (e.target as Element).closest('[data-testid=message][data-id]');
            setActiveMsg(li ? li.getAttribute('data-id') : null);
          }}
        >
          <p id="messages-hint" class="sr-only">
            Up and Down arrows move between messages; Tab then reaches the message's reactions, reply, edit, delete and link.
          </p>
          {(range.start > 0 || thread.hasMore) && <p class="muted center small">Scroll up for older messages</p>}
          {c.e2ee && e2eeInfo && e2eeInfo.joinSeq > 0 && (range.start === 0 || msgs[range.start]?.seq <= e2eeInfo.joinSeq) && (
            <p class="e2ee-notice" data-testid="joined-later">
              Messages sent before this device joined can't be read here.
            </p>
          )}
          {thread.loaded && msgs.length === 0 && thread.pending.length === 0 && <p class="muted center">No messages yet. Say hello!</p>}
          <div class="msg-list" data-testid="message-list">
            {items}
          </div>
        </div>
        {(below > 0 || !atEnd) && (
          // New messages below, or scrolled so far back that the newest are out of the window.
          <button
            type="button"
            class="btn jump-newest"
            onClick={jumpToNewest}
            data-testid="jump-newest"
            aria-label={below > 0 ? `${below === 1 ? '1 new message' : `${below} new messages`}, jump to newest` : 'Jump to the newest messages'}
          >
            <span aria-hidden="true">↓</span> {below > 0 ? (below === 1 ? '1 new message' : `${below} new messages`) : 'Newest'}
          </button>
        )}
        <p class="sr-only" aria-live="polite" data-testid="announce">
          {announce}
        </p>
      </div>
      <TypingLine store={store} c={c} myId={me.id} />
      {blocked ? (
        <p class="e2ee-blocked" role="status" data-testid="e2ee-blocked">
          {blocked}
        </p>
      ) : (
        <Composer
          store={store}
          conversationId={c.id}
          onSent={() => {
            stick.current = true;
            // Sent while far back: the view goes to the newest in a task of its own, so the
            // keypress is answered (composer cleared) before the list is rebuilt there.
            if (win.current.to !== Infinity) setTimeout(toNewest, 0);
          }}
          replyTo={replyTo}
          replyName={replyTo ? (replyTo.senderId === me.id ? 'yourself' : memberName(c, replyTo.senderId)) : ''}
          onCancelReply={() => setReplyTo(null)}
          editing={editing}
          onEditDone={() => setEditing(null)}
          members={c.members}
          meId={me.id}
          onEditLast={() => {
            const m = lastEditable();
            if (m) {
              setReplyTo(null);
              setEditing(m);
            }
            return !!m;
          }}
        />
      )}
      {safety !== null && <SafetyDialog store={store} c={c} initial={safety || undefined} onClose={() => setSafety(null)} />}
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

function hasFiles(e: DragEvent): boolean {
  return !!e.dataTransfer && [...e.dataTransfer.types].includes('Files');
}

/** Uploads files for the next message of a conversation; beyond MAX_ATTACHMENTS, says so. */
function attachFiles(store: ChatStore, conversationId: string, files: File[]): void {
  if (files.length === 0) return;
  const left = store.attach(conversationId, files);
  if (left > 0) store.notice.value = `A message carries up to ${MAX_ATTACHMENTS} files: ${left === 1 ? '1 file was' : `${left} files were`} left out.`;
}

function typingText(names: string[]): string {
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  return 'Several people are typing…';
}

interface ItemProps {
  m: Message;
  conversationId: string;
  mine: boolean;
  sender: string | null;
  seen: string | null;
  highlighted: boolean;
  quoteName: string;
  canEdit: boolean;
  canDelete: boolean;
  /** It has the keyboard focus: its buttons are in the Tab order. */
  active: boolean;
  /** Who reacted to it, as far as known (a new object when that changes). */
  reactors: Record<string, string[]> | undefined;
  actions: { current: Actions };
  store: ChatStore;
  /** The members' usernames (lower case) to ids, for the mentions in the text (one map per member list). */
  byUsername: ReadonlyMap<string, string>;
  meId: string;
  /** The conversation is end-to-end encrypted. */
  encrypted?: boolean;
}

// Formatters made once: toLocaleString with options builds one per call, which is most of
// the cost of rendering a message.
const FULL_TIME = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'medium' });
const SHORT_TIME = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });

/** The full local date and time of a message, for its tooltip. */
function fullTime(iso: string): string {
  return FULL_TIME.format(new Date(iso));
}

/** Hours and minutes (as common.tsx's timeShort, with the formatter made once). */
function shortTime(iso: string): string {
  return SHORT_TIME.format(new Date(iso));
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

const MessageItem = memo(function MessageItem(p: ItemProps) {
  const { m, mine } = p;
  const act = p.actions.current;
  const [actions, setActions] = useState(false);
  const [picker, setPicker] = useState(false);
  const [up, setUp] = useState(false);
  const [below, setBelow] = useState(false);
  const liRef = useRef<HTMLElement>(null);
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
  // The toolbar (about half of a message's nodes) is built when the browser is idle, or at
  // once when the message is hovered, touched or focused: bringing a window of messages into
  // the DOM then costs half as much in the task that does it.
  const [tools, setTools] = useState(false);
  useEffect(() => {
    if (tools) return;
    if (typeof requestIdleCallback === 'function') {
      const h = requestIdleCallback(() => setTools(true), { timeout: 1000 });
      return () => cancelIdleCallback(h);
    }
    const h = setTimeout(() => setTools(true), 50);
    return () => clearTimeout(h);
  }, []);
  const toolsNow = () => !tools && setTools(true);
  const gone = !!m.deleted;
  const dir = gone || m.undecryptable ? undefined : (textDirection(m.body) ?? undefined);
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
    <article
      ref={liRef}
      class={'msg' + (mine ? ' mine' : '') + (gone ? ' gone' : '') + (actions || picker ? ' actions-open' : '') + (actions && below ? ' actions-below' : '') + (p.highlighted ? ' highlight' : '')}
      data-seq={m.seq}
      data-id={m.id}
      data-testid="message"
      tabIndex={-1}
      aria-label={p.sender ?? undefined}
      onPointerEnter={toolsNow}
      onPointerDown={toolsNow}
      onFocusCapture={toolsNow}
    >
      {p.sender && <span class="msg-sender">{p.sender}</span>}
      <div
        class="bubble"
        dir={dir}
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
        {m.replyTo && !gone && <Quote r={m.replyTo} name={p.quoteName} onClick={() => act.quote(m)} tabIndex={tab} />}
        {gone ? (
          <p class="msg-body msg-deleted" data-testid="deleted">
            {m.deleted!.reason === 'expired' ? 'This message disappeared' : 'Message deleted'}
          </p>
        ) : m.undecryptable ? (
          <p class="msg-body msg-deleted" data-testid="undecryptable">
            {m.beforeJoin ? 'Sent before this device joined: it cannot be read here.' : p.encrypted ? 'This message could not be decrypted on this device.' : 'This message cannot be shown.'}
          </p>
        ) : (
          <>
            {m.attachments && m.attachments.length > 0 && <AttachmentList store={p.store} list={m.attachments} tab={tab} />}
            {(m.body !== '' || !m.attachments?.length) && (
              <div class="msg-body" dir="auto">
                <RichText text={m.body} linkTab={tab} mentions={m.mentions?.length ? { ids: m.mentions, byUsername: p.byUsername, meId: p.meId } : undefined} />
              </div>
            )}
          </>
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
          <time dateTime={m.createdAt} title={fullTime(m.createdAt)}>
            {shortTime(m.createdAt)}
          </time>
        </span>
      </div>
      {!gone && (tools || p.active || actions || picker) && (
        <div class="msg-actions" role="toolbar" aria-label="Message actions">
          {QUICK_REACTIONS.slice(0, 3).map(([e, name]) => (
            <button key={e} type="button" class="btn-icon act quick" tabIndex={tab} aria-label={`React with ${name}`} aria-pressed={mineSet.has(e)} onClick={() => act.react(m, e, mineSet.has(e))}>
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
          <button type="button" class="btn-icon act" tabIndex={tab} aria-label="Reply" onClick={() => { setActions(false); act.reply(m); }}>
            <Icon name="reply" />
          </button>
          {p.canEdit && (
            <button type="button" class="btn-icon act" tabIndex={tab} aria-label="Edit" onClick={() => { setActions(false); act.edit(m); }}>
              <Icon name="edit" />
            </button>
          )}
          {p.canDelete && (
            <button type="button" class="btn-icon act danger" tabIndex={tab} aria-label="Delete" onClick={() => { setActions(false); act.remove(m); }}>
              <Icon name="delete" />
            </button>
          )}
          <button type="button" class="btn-icon act" tabIndex={tab} aria-label="Copy link" title="Copy link to this message" onClick={() => { setActions(false); act.copyLink(m); }}>
            <Icon name="link" />
          </button>
        </div>
      )}
      {picker && (
        <EmojiPicker
          up={up}
          mine={mineSet}
          onClose={closePicker}
          onPick={(e) => {
            act.react(m, e, mineSet.has(e));
            setActions(false);
            closePicker();
          }}
        />
      )}
      {!gone && m.reactions && m.reactions.length > 0 && <ReactionChips tabIndex={tab} reactions={m.reactions} who={(r) => act.whoReacted(m, r)} onToggle={(r) => act.react(m, r.emoji, r.me)} />}
      {p.seen && (
        <span class="seen" data-testid="seen">
          {p.seen}
        </span>
      )}
    </article>
  );
});

function SettingLine({ n, who }: { n: SettingNotice; who: string }) {
  return (
    <div class="system-line" role="note" data-testid="setting-notice">
      <Icon name="timer" />{' '}
      {n.expireAfter ? `${who} turned on disappearing messages: ${expireLabel(n.expireAfter)}.` : `${who} turned off disappearing messages.`}
    </div>
  );
}

function PendingItem({ p, store, quoteName, onRetry, onDiscard }: { p: Pending; store: ChatStore; quoteName: string; onRetry: () => void; onDiscard: () => void }) {
  return (
    <article class={'msg mine ' + p.status} data-testid="message" data-status={p.status}>
      <div class="bubble" dir={textDirection(p.body) ?? undefined}>
        {p.replyTo && <Quote r={p.replyTo} name={quoteName} />}
        {p.attachments && p.attachments.length > 0 && <AttachmentList store={store} list={p.attachments} tab={-1} />}
        {(p.body !== '' || !p.attachments?.length) && (
          <div class="msg-body" dir="auto">
            <RichText text={p.body} />
          </div>
        )}
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
    </article>
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
  /** The conversation's members, offered when "@" is typed. */
  members: Member[];
  meId: string;
}

function Composer({ store, conversationId, onSent, replyTo, replyName, onCancelReply, editing, onEditDone, onEditLast, members, meId }: ComposerProps) {
  // The draft of this conversation, kept by the store (across switching and reloads).
  const [text, setText] = useState(() => store.draft(conversationId));
  // The text being edited; the draft waits meanwhile.
  const [editText, setEditText] = useState('');
  const [busy, setBusy] = useState(false);
  const [recording, setRecording] = useState(false);
  const ref = useRef<HTMLTextAreaElement>(null);
  const fileInput = useRef<HTMLInputElement>(null);
  const uploads = store.uploads.value[conversationId] ?? [];
  // "@" autocomplete: the mention being typed and the member selected in the list.
  const [mention, setMention] = useState<MentionState<Member> | null>(null);
  const caretAt = useRef<number | null>(null);
  const listId = 'mention-list';
  useEffect(() => {
    if (window.matchMedia('(min-width: 760px)').matches) ref.current?.focus();
  }, [conversationId]);
  // The caret goes to the end of the text to edit (or of the draft, for a reply), once that
  // text is in the box: in layout effects, so nothing typed in between can be overwritten
  // (a later animation frame could collapse a selection made meanwhile).
  const caretToEnd = useRef(false);
  useLayoutEffect(() => {
    if (editing) setEditText(editing.body);
    if (editing || replyTo) {
      ref.current?.focus();
      caretToEnd.current = true;
    }
  }, [editing?.id, replyTo?.id]);
  useLayoutEffect(() => {
    const el = ref.current;
    if (!caretToEnd.current || !el || (editing && el.value !== editing.body)) return;
    caretToEnd.current = false;
    el.selectionStart = el.selectionEnd = el.value.length;
  });
  const value = editing ? editText : text;
  useLayoutEffect(() => {
    const el = ref.current;
    if (caretAt.current === null || !el) return;
    el.selectionStart = el.selectionEnd = caretAt.current;
    caretAt.current = null;
  });
  /** The list follows the caret: what is typed after "@" filters it. */
  const followCaret = (el: HTMLTextAreaElement) => {
    setMention((prev) => (el.selectionStart === el.selectionEnd ? mentionState(el.value, el.selectionStart, members, meId, prev) : null));
  };
  const setValue = (v: string) => {
    if (editing) {
      setEditText(v);
      return;
    }
    setText(v);
    store.setDraft(conversationId, v);
  };
  const pickMention = (m: Member) => {
    const el = ref.current;
    if (!mention || !el) return;
    const r = insertMention(el.value, mention.start, el.selectionStart, m.username);
    setValue(r.text);
    caretAt.current = r.caret;
    setMention(null);
    el.focus();
  };
  const chars = [...value].length;
  const tooLong = chars > MAX_CHARS;
  const cancel = () => {
    if (editing) onEditDone();
    else if (replyTo) onCancelReply();
    ref.current?.focus();
  };
  const sendable = editing ? !!value.trim() && !tooLong && !busy : canSend(uploads, text) && !tooLong && !recording;
  const submit = async (e?: Event) => {
    e?.preventDefault();
    if (!sendable) return;
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
    store.send(conversationId, text, replyTo ?? undefined, readyAttachments(uploads));
    if (replyTo) onCancelReply();
    setText('');
    ref.current?.focus();
  };
  return (
    <form class={'composer' + (editing || replyTo || uploads.length ? ' with-context' : '') + (recording ? ' recording' : '')} onSubmit={(e) => void submit(e)}>
      {!editing && <UploadChips store={store} conversationId={conversationId} />}
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
      {mention && <MentionList id={listId} state={mention} onPick={pickMention} />}
      <label for="composer-input" class="sr-only">
        {editing ? 'Edit message' : 'Message'}
      </label>
      <textarea
        id="composer-input"
        ref={ref}
        rows={1}
        placeholder={editing ? 'Edit your message' : 'Write a message'}
        dir="auto"
        value={value}
        aria-describedby="composer-hint"
        aria-invalid={tooLong}
        role="combobox"
        aria-autocomplete="list"
        aria-haspopup="listbox"
        aria-expanded={!!mention}
        aria-controls={mention ? listId : undefined}
        aria-activedescendant={mention ? `${listId}-${mention.options[mention.index].id}` : undefined}
        onClick={(e) => followCaret(e.currentTarget)}
        onKeyUp={(e) => {
          if (e.key === 'ArrowLeft' || e.key === 'ArrowRight' || e.key === 'Home' || e.key === 'End') followCaret(e.currentTarget);
        }}
        onBlur={() => setMention(null)}
        onPaste={(e) => {
          // A screenshot or copied files: attached, not pasted as text.
          if (editing) return;
          const files = [...(e.clipboardData?.files ?? [])];
          if (files.length === 0) return;
          e.preventDefault();
          attachFiles(store, conversationId, files);
        }}
        onInput={(e) => {
          const v = e.currentTarget.value;
          followCaret(e.currentTarget);
          if (editing) {
            setEditText(v);
            return;
          }
          setText(v);
          store.setDraft(conversationId, v);
          if (v.trim()) store.typed(conversationId);
        }}
        onKeyDown={(e) => {
          if (mention && !e.isComposing) {
            const n = mention.options.length;
            if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
              e.preventDefault();
              setMention({ ...mention, index: (mention.index + (e.key === 'ArrowDown' ? 1 : n - 1)) % n });
              return;
            }
            if ((e.key === 'Enter' || e.key === 'Tab') && !e.shiftKey) {
              e.preventDefault();
              pickMention(mention.options[mention.index]);
              return;
            }
            if (e.key === 'Escape') {
              // Closes the list only (not the reply or the edit, not "mark read").
              e.preventDefault();
              e.stopPropagation();
              setMention(null);
              return;
            }
          }
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
      {/* After the text box: from the message list, Tab goes to the text first. */}
      {!editing && (
        <>
          <button type="button" class="btn-icon composer-tool" aria-label="Attach files" title="Attach files" onClick={() => fileInput.current?.click()} disabled={recording} data-testid="attach">
            <Icon name="attach" />
          </button>
          <input
            ref={fileInput}
            type="file"
            multiple
            class="file-input"
            aria-label="Attach files"
            tabIndex={-1}
            data-testid="file-input"
            onChange={(e) => {
              const input = e.currentTarget;
              attachFiles(store, conversationId, [...(input.files ?? [])]);
              // The same file may be picked again.
              input.value = '';
              ref.current?.focus();
            }}
          />
        </>
      )}
      {!editing && <VoiceRecorder store={store} conversationId={conversationId} disabled={false} onState={setRecording} />}
      <button type="submit" class="btn btn-primary" disabled={!sendable}>
        {editing ? 'Save' : 'Send'}
      </button>
      <p id="composer-hint" class={'sr-only' + (chars > MAX_CHARS - 500 ? ' counter' : '')} aria-live="polite" data-testid="composer-hint">
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
  const [name, setName] = useState(c.title ?? '');
  const [renameError, setRenameError] = useState('');
  const [renaming, setRenaming] = useState(false);
  const rename = async (e: Event) => {
    e.preventDefault();
    const title = name.trim();
    if (!title) {
      setRenameError('Give the group a name.');
      return;
    }
    setRenaming(true);
    setRenameError('');
    try {
      store.upsertConversation(await renameConversation(store.api, c.id, title));
    } catch (err) {
      setRenameError(describeError(err, 'settings'));
    } finally {
      setRenaming(false);
    }
  };
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
      {canManage && (
        <form class="rename-form" onSubmit={(e) => void rename(e)} data-testid="rename-form">
          <label for="group-name">Group name</label>
          <div class="rename-row">
            <input id="group-name" value={name} maxLength={100} onInput={(e) => setName(e.currentTarget.value)} aria-invalid={!!renameError} aria-describedby={renameError ? 'rename-error' : undefined} />
            <button type="submit" class="btn btn-small" disabled={renaming || name.trim() === (c.title ?? '')}>
              Rename
            </button>
          </div>
          {renameError && (
            <p id="rename-error" class="form-error" role="alert">
              {renameError}
            </p>
          )}
        </form>
      )}
      <ul class="people" aria-label="Members">
        {c.members.map((m) => (
          <li key={m.id} class="member-row">
            <Avatar name={m.displayName || m.username} id={m.id} online={!!m.online} avatar={m.avatar} />
            <span class="person-text">
              <span class="person-name">
                {m.displayName || m.username}
                {m.id === me.id ? ' (you)' : ''}
              </span>
              <span class="muted">
                @{m.username}
                {m.online ? ' · online' : ''}
              </span>
            </span>
            <span class={'role-badge role-' + m.role} data-testid="role-badge">
              {m.role}
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
