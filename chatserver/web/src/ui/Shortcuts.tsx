import { signal } from '@preact/signals';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { conversationTitle, type ChatStore } from '../store';
import type { Conversation } from '../types';
import { Avatar, Modal } from './common';

/** Which shortcut dialog is open (the Account menu opens the help too). */
export const shortcutDialog = signal<'switcher' | 'help' | null>(null);

const isMac = typeof navigator !== 'undefined' && /Mac|iPhone|iPad/.test(navigator.platform || navigator.userAgent);
const MOD = isMac ? '⌘' : 'Ctrl';

/** Every shortcut of the app, as the help dialog lists them. */
export const SHORTCUTS: Array<[keys: string[], what: string]> = [
  [[MOD, 'K'], 'Find a conversation (quick switcher)'],
  [['Alt', '↑'], 'Previous conversation in the list'],
  [['Alt', '↓'], 'Next conversation in the list'],
  [['Esc'], 'Mark the open conversation as read'],
  [['?'], 'Show these shortcuts'],
  [['Enter'], 'Send the message'],
  [['Shift', 'Enter'], 'New line in the message'],
  [['↑'], 'In an empty message box: edit your last message'],
  [['Esc'], 'While editing or replying: cancel'],
  [['↑', '↓'], 'In the message list: move between messages (then Tab to their actions)'],
];

function inTextField(t: EventTarget | null): boolean {
  const el = t as HTMLElement | null;
  if (!el || !el.tagName) return false;
  if (el.isContentEditable) return true;
  const tag = el.tagName;
  if (tag === 'TEXTAREA' || tag === 'SELECT') return true;
  if (tag !== 'INPUT') return false;
  const type = (el as HTMLInputElement).type;
  return !['button', 'checkbox', 'radio', 'submit', 'reset', 'range', 'color', 'file'].includes(type);
}

/** A dialog, popover or menu is open: Escape and the arrows are its own. */
function somethingOpen(): boolean {
  return !!document.querySelector('dialog[open], [role=dialog], [data-popup-open]');
}

/**
 * The app's global keyboard shortcuts: Ctrl/Cmd+K (quick switcher), Alt+Up/Down (previous,
 * next conversation), Escape (mark the open conversation read, when nothing else takes the
 * Escape: the composer takes it to cancel an edit or a reply, a dialog to close), and `?`
 * outside text fields (the list of shortcuts).
 */
export function Shortcuts({ store, navigate }: { store: ChatStore; navigate: (id: string | null) => void }) {
  useEffect(() => {
    // Capture phase: these go before the message list's own arrow keys.
    const first = (e: KeyboardEvent) => {
      if ((e.ctrlKey || e.metaKey) && !e.altKey && !e.shiftKey && e.key.toLowerCase() === 'k') {
        e.preventDefault();
        e.stopPropagation();
        shortcutDialog.value = shortcutDialog.value === 'switcher' ? null : 'switcher';
        return;
      }
      if (e.altKey && !e.ctrlKey && !e.metaKey && (e.key === 'ArrowUp' || e.key === 'ArrowDown')) {
        if (somethingOpen()) return;
        const list = store.sortedConversations.value;
        if (list.length === 0) return;
        e.preventDefault();
        e.stopPropagation();
        const i = list.findIndex((c) => c.id === store.activeId.value);
        const next = i < 0 ? (e.key === 'ArrowUp' ? list.length - 1 : 0) : Math.max(0, Math.min(list.length - 1, i + (e.key === 'ArrowUp' ? -1 : 1)));
        if (list[next].id !== store.activeId.value) navigate(list[next].id);
      }
    };
    // Bubble phase: whoever handles Escape closer to the focus (and says so with
    // preventDefault) comes first.
    const last = (e: KeyboardEvent) => {
      if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey) return;
      if (e.key === 'Escape') {
        const id = store.activeId.value;
        if (!id || somethingOpen()) return;
        store.markReadNow(id);
        return;
      }
      if (e.key === '?' && !inTextField(e.target) && !somethingOpen()) {
        e.preventDefault();
        shortcutDialog.value = 'help';
      }
    };
    window.addEventListener('keydown', first, true);
    window.addEventListener('keydown', last);
    return () => {
      window.removeEventListener('keydown', first, true);
      window.removeEventListener('keydown', last);
    };
  }, [store, navigate]);
  const d = shortcutDialog.value;
  const close = () => (shortcutDialog.value = null);
  if (d === 'switcher') return <QuickSwitcher store={store} navigate={navigate} onClose={close} />;
  if (d === 'help') return <ShortcutHelp onClose={close} />;
  return null;
}

function fold(s: string): string {
  return s.normalize('NFD').replace(/\p{M}/gu, '').toLowerCase();
}

/** What the switcher matches: the title and every member's name and username. */
function haystack(c: Conversation, myId: string): string {
  return fold([conversationTitle(c, myId), ...c.members.filter((m) => m.id !== myId).flatMap((m) => [m.displayName, m.username])].join(' '));
}

function QuickSwitcher({ store, navigate, onClose }: { store: ChatStore; navigate: (id: string | null) => void; onClose: () => void }) {
  const [q, setQ] = useState('');
  const [sel, setSel] = useState(0);
  const listRef = useRef<HTMLUListElement>(null);
  const myId = store.me.value?.id ?? '';
  const all = store.sortedConversations.value;
  const shown = useMemo(() => {
    const words = fold(q).split(/\s+/).filter(Boolean);
    return words.length === 0 ? all : all.filter((c) => words.every((w) => haystack(c, myId).includes(w)));
  }, [q, all, myId]);
  const cur = Math.min(sel, Math.max(0, shown.length - 1));
  useEffect(() => {
    listRef.current?.querySelector(`[data-index="${cur}"]`)?.scrollIntoView({ block: 'nearest' });
  }, [cur]);
  const open = (c: Conversation | undefined) => {
    if (!c) return;
    onClose();
    navigate(c.id);
  };
  return (
    <Modal title="Go to a conversation" onClose={onClose}>
      <div class="switcher">
        <label for="switcher-input" class="sr-only">
          Conversation or person
        </label>
        <input
          id="switcher-input"
          type="text"
          role="combobox"
          aria-expanded="true"
          aria-controls="switcher-list"
          aria-autocomplete="list"
          aria-activedescendant={shown.length ? `switcher-${cur}` : undefined}
          autocomplete="off"
          placeholder="Type a name…"
          autoFocus
          value={q}
          onInput={(e) => {
            setQ(e.currentTarget.value);
            setSel(0);
          }}
          onKeyDown={(e) => {
            if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
              e.preventDefault();
              if (shown.length) setSel((cur + (e.key === 'ArrowDown' ? 1 : shown.length - 1)) % shown.length);
            } else if (e.key === 'Enter') {
              e.preventDefault();
              open(shown[cur]);
            }
          }}
        />
        <ul id="switcher-list" role="listbox" aria-label="Conversations" class="switcher-list" ref={listRef}>
          {shown.map((c, i) => {
            const title = conversationTitle(c, myId);
            const other = c.kind === 'direct' ? c.members.find((m) => m.id !== myId) : undefined;
            return (
              <li
                key={c.id}
                id={`switcher-${i}`}
                data-index={i}
                role="option"
                aria-selected={i === cur}
                class={'switcher-item' + (i === cur ? ' selected' : '')}
                onClick={() => open(c)}
                onPointerMove={() => i !== cur && setSel(i)}
              >
                <Avatar name={title} id={other ? other.id : c.id} avatar={c.kind === 'direct' ? other?.avatar : undefined} />
                <span class="switcher-title">{title}</span>
                {c.kind === 'group' && <span class="muted small">{c.members.length} members</span>}
                {c.unread > 0 && <span class="badge">{c.unread > 99 ? '99+' : c.unread}</span>}
              </li>
            );
          })}
        </ul>
        {shown.length === 0 && (
          <p class="muted" role="status">
            No conversation matches “{q.trim()}”.
          </p>
        )}
        <p class="hint">↑ ↓ to choose, Enter to open, Esc to close.</p>
      </div>
    </Modal>
  );
}

function ShortcutHelp({ onClose }: { onClose: () => void }) {
  return (
    <Modal title="Keyboard shortcuts" onClose={onClose}>
      <table class="shortcut-table">
        <thead>
          <tr>
            <th scope="col">Keys</th>
            <th scope="col">What they do</th>
          </tr>
        </thead>
        <tbody>
          {SHORTCUTS.map(([keys, what]) => (
            <tr key={keys.join('+') + what}>
              <td>
                {keys.map((k, i) => (
                  <span key={k + i}>
                    {i > 0 && (keys[0] === '↑' && keys[1] === '↓' ? ' ' : ' + ')}
                    <kbd>{k}</kbd>
                  </span>
                ))}
              </td>
              <td>{what}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <button type="button" class="btn btn-primary" autoFocus onClick={onClose}>
        Close
      </button>
    </Modal>
  );
}
