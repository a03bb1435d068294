import { useEffect, useRef, useState } from 'preact/hooks';
import { describeError } from '../errors';
import { activeUntil, dndText, isForever, MUTE_CHOICES, muteText, nextMorning, type MentionState } from '../notify';
import { notifications } from '../push';
import type { ChatStore } from '../store';
import type { Conversation, Member } from '../types';
import { Avatar, Modal } from './common';

/** Times as the message list shows them (the browser's locale). */
const localTime = (d: Date) => d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
import './notifications.css';

/**
 * The Notifications dialog (Account menu): the opt-in on this device (the permission is
 * asked only on that click), what notifications may show, do-not-disturb, and the sound.
 * The first three settings are the server's (all devices), the sound is this device's.
 */
export function NotificationsDialog({ store, onClose }: { store: ChatStore; onClose: () => void }) {
  const device = notifications.device;
  const st = store.notifySettings.value;
  const [error, setError] = useState<string | null>(null);
  const [now, setNow] = useState(() => Date.now());
  // The choice picked here (the server keeps only the end time, which does not tell 1 h from 8 h).
  const [picked, setPicked] = useState<string | null>(null);
  useEffect(() => {
    if (!store.notifySettings.peek()) void store.loadNotifySettings();
  }, []);
  const state = device?.state.value ?? 'unsupported';
  const on = state === 'push' || state === 'in-tab';
  const change = async (c: Parameters<ChatStore['updateNotifySettings']>[0]): Promise<boolean> => {
    setError(null);
    try {
      await store.updateNotifySettings(c);
      setNow(Date.now());
      return true;
    } catch (e) {
      setError(describeError(e, 'change'));
      return false;
    }
  };
  const dndOn = activeUntil(st?.dndUntil, now);
  const dndChoice = !dndOn ? 'off' : isForever(st!.dndUntil!) ? 'always' : 'timed';
  const morning = nextMorning(now);
  return (
    <Modal title="Notifications" onClose={onClose}>
      <div class="notify-form" data-testid="notifications-dialog">
        <div class="notify-row">
          <input
            type="checkbox"
            id="notify-device"
            checked={on || state === 'working'}
            disabled={!device || state === 'unsupported' || state === 'working'}
            aria-describedby="notify-device-status"
            onChange={(e) => {
              const want = e.currentTarget.checked;
              void (want ? device?.enable() : device?.disable());
            }}
          />
          <label for="notify-device">Notify me on this device</label>
        </div>
        <p id="notify-device-status" class="notify-status muted small" role="status" data-testid="notify-status">
          {state === 'unsupported' && 'This browser cannot show notifications.'}
          {state === 'denied' && 'Notifications are blocked for Parley in this browser’s site settings.'}
          {state === 'working' && 'Setting up…'}
          {state === 'push' && 'You are notified of new messages on this device, even when Parley is closed.'}
          {state === 'in-tab' && device?.reason.value}
          {state === 'off' && 'Nothing is shown on this device.'}
        </p>
        <div class="notify-row">
          <input type="checkbox" id="notify-preview" checked={!!st?.pushPreview} disabled={!st} onChange={(e) => void change({ pushPreview: e.currentTarget.checked })} aria-describedby="notify-preview-hint" />
          <label for="notify-preview">Include message text</label>
        </div>
        <p id="notify-preview-hint" class="notify-hint muted small">
          Off: a notification says who wrote and how many messages, never what. On: the first 100 characters, which the push service relays encrypted.
        </p>
        <div class="notify-row">
          <input type="checkbox" id="notify-mentions" checked={!!st?.mentionsBreakMute} disabled={!st} onChange={(e) => void change({ mentionsBreakMute: e.currentTarget.checked })} />
          <label for="notify-mentions">Mentions notify me in muted conversations</label>
        </div>
        <fieldset class="notify-dnd" disabled={!st}>
          <legend>Do not disturb</legend>
          <p class="muted small" data-testid="dnd-state">
            {dndText(st?.dndUntil, now, localTime)}
          </p>
          <div class="notify-choices">
            {(
              [
                ['off', 'Off', () => change({ dnd: 'off' })],
                ['1h', 'For 1 hour', () => change({ dnd: '1h' })],
                ['8h', 'For 8 hours', () => change({ dnd: '8h' })],
                ['morning', `Until ${morning.getDate() === new Date(now).getDate() ? '' : 'tomorrow '}${localTime(morning)}`, () => change({ dndUntil: nextMorning(Date.now()).toISOString() })],
                ['always', 'Until I turn it off', () => change({ dnd: 'always' })],
              ] as const
            ).map(([v, label, f]) => (
              <label key={v} class="notify-choice">
                <input
                  type="radio"
                  name="dnd"
                  value={v}
                  checked={(picked ?? (dndChoice === 'timed' ? null : dndChoice)) === v}
                  onChange={() => {
                    setPicked(v);
                    void f().then((ok) => {
                      if (!ok) setPicked(null);
                    });
                  }}
                />
                {label}
              </label>
            ))}
          </div>
        </fieldset>
        <div class="notify-row">
          <input type="checkbox" id="notify-sound" checked={!!device?.sound.value} disabled={!device} onChange={(e) => device?.setSound(e.currentTarget.checked)} aria-describedby="notify-sound-hint" />
          <label for="notify-sound">Sound</label>
        </div>
        <p id="notify-sound-hint" class="notify-hint muted small">
          A short chime with notifications shown while Parley is open (this device only).
        </p>
        {error && (
          <p class="field-error" role="alert">
            {error}
          </p>
        )}
      </div>
    </Modal>
  );
}

/**
 * The header's mute menu: the state ("Muted until 14:30") on its button, the choices in a
 * menu (Up/Down move, Escape or a click outside closes and gives the focus back).
 */
export function MuteMenu({ store, c }: { store: ChatStore; c: Conversation }) {
  const [shown, setShown] = useState(false);
  const [now, setNow] = useState(() => Date.now());
  const wrap = useRef<HTMLDivElement>(null);
  const button = useRef<HTMLButtonElement>(null);
  const muted = muteText(c.mutedUntil, now, localTime);
  // A timed mute ends by itself: the label follows.
  useEffect(() => {
    if (!c.mutedUntil || isForever(c.mutedUntil)) return;
    const left = Date.parse(c.mutedUntil) - Date.now();
    if (left <= 0) return;
    const t = setTimeout(() => setNow(Date.now()), Math.min(left + 500, 2 ** 31 - 1));
    return () => clearTimeout(t);
  }, [c.mutedUntil]);
  useEffect(() => {
    if (!shown) return;
    setNow(Date.now());
    wrap.current?.querySelector<HTMLButtonElement>('[role="menuitemradio"]')?.focus();
    const outside = (e: Event) => {
      if (wrap.current && !wrap.current.contains(e.target as Node)) setShown(false);
    };
    document.addEventListener('pointerdown', outside, true);
    return () => document.removeEventListener('pointerdown', outside, true);
  }, [shown]);
  const choose = async (v: string) => {
    setShown(false);
    button.current?.focus();
    try {
      await store.setMute(c.id, v);
      setNow(Date.now());
    } catch (e) {
      store.notice.value = describeError(e, 'change');
    }
  };
  const items = () => [...(wrap.current?.querySelectorAll<HTMLButtonElement>('[role="menuitemradio"]') ?? [])];
  const forever = !!muted && isForever(c.mutedUntil!);
  return (
    <div
      class="menu mute-menu"
      ref={wrap}
      data-popup-open={shown ? '' : undefined}
      onKeyDown={(e) => {
        if (!shown) return;
        if (e.key === 'Escape') {
          e.preventDefault();
          e.stopPropagation();
          setShown(false);
          button.current?.focus();
          return;
        }
        if (e.key !== 'ArrowDown' && e.key !== 'ArrowUp' && e.key !== 'Home' && e.key !== 'End') return;
        const all = items();
        e.preventDefault();
        const i = all.indexOf(document.activeElement as HTMLButtonElement);
        const next = e.key === 'Home' ? 0 : e.key === 'End' ? all.length - 1 : i < 0 ? 0 : (i + (e.key === 'ArrowDown' ? 1 : all.length - 1)) % all.length;
        all[next]?.focus();
      }}
      onFocusOut={(e) => {
        const to = e.relatedTarget as Node | null;
        if (shown && to && wrap.current && !wrap.current.contains(to)) setShown(false);
      }}
    >
      <button
        type="button"
        ref={button}
        class={'btn btn-small mute-btn' + (muted ? ' on' : '')}
        aria-haspopup="menu"
        aria-expanded={shown}
        aria-controls={`mute-menu-${c.id}`}
        data-testid="mute-button"
        onClick={() => setShown(!shown)}
      >
        <BellIcon off={!!muted} />
        <span class="mute-text">{muted ?? 'Mute'}</span>
      </button>
      {shown && (
        <div class="menu-items" role="menu" id={`mute-menu-${c.id}`} aria-label="Mute notifications">
          {MUTE_CHOICES.map((m) => (
            <button key={m.value} type="button" role="menuitemradio" aria-checked={m.value === 'always' ? forever : false} class="menu-item" tabIndex={-1} onClick={() => void choose(m.value)}>
              {m.label}
            </button>
          ))}
          <button type="button" role="menuitemradio" aria-checked={!muted} class="menu-item" tabIndex={-1} onClick={() => void choose('off')}>
            Unmute
          </button>
        </div>
      )}
    </div>
  );
}

/** A bell, struck through when muted (inline SVG, no style attributes). */
export function BellIcon({ off }: { off: boolean }) {
  return (
    <svg class="icon" viewBox="0 0 24 24" width="16" height="16" aria-hidden="true" focusable="false">
      <path d="M12 3a6 6 0 0 0-6 6v3.6L4.3 15.4A1 1 0 0 0 5.2 17h13.6a1 1 0 0 0 .9-1.6L18 12.6V9a6 6 0 0 0-6-6zm-2 15a2 2 0 0 0 4 0z" fill="currentColor" />
      {off && <path d="M4 3l17 17" stroke="currentColor" stroke-width="2.2" stroke-linecap="round" />}
    </svg>
  );
}

/** The list under the composer (a listbox owned by the textarea, which is the combobox). */
export function MentionList({ id, state, onPick }: { id: string; state: MentionState<Member>; onPick: (m: Member) => void }) {
  return (
    <ul class="mention-list" id={id} role="listbox" aria-label="Members to mention" data-testid="mention-list">
      {state.options.map((m, i) => (
        <li
          key={m.id}
          id={`${id}-${m.id}`}
          role="option"
          aria-selected={i === state.index}
          class={'mention-option' + (i === state.index ? ' selected' : '')}
          onPointerDown={(e) => {
            // Keep the focus in the text box.
            e.preventDefault();
            onPick(m);
          }}
        >
          <Avatar name={m.displayName || m.username} id={m.id} avatar={m.avatar} />
          <span class="mention-name">{m.displayName || m.username}</span>
          <span class="muted small">@{m.username}</span>
        </li>
      ))}
    </ul>
  );
}
