import { useEffect, useRef } from 'preact/hooks';
import type { Reaction } from '../types';

/** A compact built-in emoji set (no dependency): [emoji, name]. */
export const EMOJI: ReadonlyArray<readonly [string, string]> = [
  ['👍', 'thumbs up'],
  ['❤️', 'red heart'],
  ['😂', 'tears of joy'],
  ['😮', 'surprised'],
  ['😢', 'crying'],
  ['🙏', 'thank you'],
  ['👎', 'thumbs down'],
  ['🎉', 'party'],
  ['🔥', 'fire'],
  ['👏', 'clapping'],
  ['😀', 'grinning'],
  ['😊', 'smiling'],
  ['😍', 'heart eyes'],
  ['🤔', 'thinking'],
  ['😅', 'sweat smile'],
  ['😎', 'cool'],
  ['🙌', 'raised hands'],
  ['💯', 'hundred'],
  ['✅', 'check mark'],
  ['👀', 'eyes'],
  ['🚀', 'rocket'],
  ['⭐', 'star'],
  ['☕', 'coffee'],
  ['🍕', 'pizza'],
  ['😴', 'sleepy'],
  ['😬', 'grimacing'],
  ['🤝', 'handshake'],
  ['💪', 'flexed biceps'],
  ['🌞', 'sun'],
  ['❓', 'question mark'],
];

export const QUICK_REACTIONS = EMOJI.slice(0, 6);

export function emojiName(e: string): string {
  return EMOJI.find(([x]) => x === e)?.[1] ?? e;
}

/** A popover of emoji buttons. Escape or a click outside closes it; the focus starts on the first. */
export function EmojiPicker({ onPick, onClose, mine, up }: { onPick: (emoji: string) => void; onClose: () => void; mine: Set<string>; up?: boolean }) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    ref.current?.querySelector('button')?.focus();
    const outside = (e: PointerEvent) => {
      if (ref.current && !ref.current.contains(e.target as Node)) onClose();
    };
    document.addEventListener('pointerdown', outside, true);
    return () => document.removeEventListener('pointerdown', outside, true);
  }, []);
  return (
    <div
      class={'emoji-picker' + (up ? ' up' : '')}
      role="dialog"
      aria-label="Choose a reaction"
      ref={ref}
      onKeyDown={(e) => {
        if (e.key === 'Escape') {
          e.preventDefault();
          e.stopPropagation();
          onClose();
        }
      }}
    >
      <div class="emoji-grid">
        {EMOJI.map(([e, name]) => (
          <button key={e} type="button" class={'emoji-btn' + (mine.has(e) ? ' on' : '')} aria-label={name} aria-pressed={mine.has(e)} title={name} onClick={() => onPick(e)}>
            {e}
          </button>
        ))}
      </div>
    </div>
  );
}

/** Reaction chips under a message: emoji and count; pressed when I am among them. */
export function ReactionChips({ reactions, who, onToggle, disabled, tabIndex }: { reactions: Reaction[]; who: (r: Reaction) => string; onToggle: (r: Reaction) => void; disabled?: boolean; tabIndex?: number }) {
  if (reactions.length === 0) return null;
  return (
    <ul class="reactions" aria-label="Reactions" data-testid="reactions">
      {reactions.map((r) => {
        const people = who(r);
        return (
          <li key={r.emoji}>
            <button
              type="button"
              class={'reaction' + (r.me ? ' me' : '')}
              aria-pressed={r.me}
              disabled={disabled}
              tabIndex={tabIndex}
              title={people}
              aria-label={`${emojiName(r.emoji)} ${r.emoji}, ${r.count}: ${people}`}
              data-emoji={r.emoji}
              onClick={() => onToggle(r)}
            >
              <span aria-hidden="true">{r.emoji}</span>
              <span class="reaction-count" aria-hidden="true">
                {r.count}
              </span>
            </button>
          </li>
        );
      })}
    </ul>
  );
}

/** "Alice, Bob and 2 others" */
export function peopleList(names: string[], others: number): string {
  const parts = [...names];
  if (others > 0) parts.push(others === 1 ? '1 other' : `${others} others`);
  if (parts.length === 0) return '';
  if (parts.length === 1) return parts[0];
  return parts.slice(0, -1).join(', ') + ' and ' + parts[parts.length - 1];
}

export const EXPIRE_CHOICES: ReadonlyArray<readonly [number, string]> = [
  [0, 'Off'],
  [3600, '1 hour'],
  [86400, '1 day'],
  [604800, '1 week'],
  [2592000, '30 days'],
];

export function expireLabel(seconds: number): string {
  const found = EXPIRE_CHOICES.find(([s]) => s === seconds);
  if (found) return found[1];
  if (seconds % 86400 === 0) return `${seconds / 86400} days`;
  if (seconds % 3600 === 0) return `${seconds / 3600} hours`;
  return `${Math.round(seconds / 60)} minutes`;
}

const ICONS: Record<string, string[]> = {
  react: ['M12 21a9 9 0 1 1 9-9', 'M8.5 14.5a4.5 4.5 0 0 0 7 0', 'M9 9.5h.01', 'M15 9.5h.01', 'M19 15v6', 'M16 18h6'],
  reply: ['M10 8 5 12l5 4', 'M5 12h9a6 6 0 0 1 6 6v1'],
  edit: ['M4 20h4L19 9l-4-4L4 16z', 'M13.5 6.5l4 4'],
  delete: ['M4 7h16', 'M10 11v6', 'M14 11v6', 'M6 7l1 13h10l1-13', 'M9 7V4h6v3'],
  timer: ['M12 21a8 8 0 1 0 0-16 8 8 0 0 0 0 16z', 'M12 9v4l2.5 2', 'M10 2h4'],
  link: ['M10 14a4 4 0 0 0 5.7 0l3-3a4 4 0 0 0-5.7-5.7l-1 1', 'M14 10a4 4 0 0 0-5.7 0l-3 3a4 4 0 0 0 5.7 5.7l1-1'],
  attach: ['M21 11.5l-8.5 8.5a5 5 0 0 1-7-7L14 4.5a3.5 3.5 0 0 1 5 5l-8.5 8.5a2 2 0 0 1-3-3L15 7.5'],
  mic: ['M12 3a3 3 0 0 0-3 3v6a3 3 0 0 0 6 0V6a3 3 0 0 0-3-3z', 'M5 11a7 7 0 0 0 14 0', 'M12 18v3'],
  play: ['M7 4.5v15l12.5-7.5z'],
  pause: ['M8 5v14', 'M16 5v14'],
  stop: ['M6 6h12v12H6z'],
  send: ['M4 12l16-8-6 16-2.5-6.5z'],
  file: ['M14 3H7a2 2 0 0 0-2 2v14a2 2 0 0 0 2 2h10a2 2 0 0 0 2-2V8z', 'M14 3v5h5', 'M9 13h6', 'M9 17h6'],
  download: ['M12 4v11', 'M7 10l5 5 5-5', 'M5 20h14'],
};

/** A line icon (inline SVG, no style attribute: allowed by the CSP). */
export function Icon({ name }: { name: keyof typeof ICONS }) {
  return (
    <svg class="icon" viewBox="0 0 24 24" width="20" height="20" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true" focusable="false">
      {ICONS[name].map((d) => (
        <path key={d} d={d} />
      ))}
    </svg>
  );
}
