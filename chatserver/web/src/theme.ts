import { signal } from '@preact/signals';
import { browserStorage, type KeyValueStorage } from './persist';

/** System follows the browser's prefers-color-scheme; Light and Dark override it. */
export type ThemeChoice = 'system' | 'light' | 'dark';

export const THEME_KEY = 'parley:v1:theme';

function isChoice(v: unknown): v is ThemeChoice {
  return v === 'system' || v === 'light' || v === 'dark';
}

export function readTheme(storage: KeyValueStorage): ThemeChoice {
  try {
    const v = storage.getItem(THEME_KEY);
    return isChoice(v) ? v : 'system';
  } catch {
    return 'system';
  }
}

/**
 * Sets the class on <html> that picks the colours (style.css: `theme-light`, `theme-dark`,
 * neither for System). main.tsx calls this before the first render, so the page is never
 * drawn in the other scheme first; no inline script is needed (the CSP forbids it).
 */
export function applyTheme(choice: ThemeChoice, root: { classList: DOMTokenList } = document.documentElement): void {
  root.classList.toggle('theme-light', choice === 'light');
  root.classList.toggle('theme-dark', choice === 'dark');
}

const storage = typeof window !== 'undefined' ? browserStorage() : null;

/** The person's choice, remembered in localStorage (not per user: it is this device's). */
export const theme = signal<ThemeChoice>(storage ? readTheme(storage) : 'system');

export function setTheme(choice: ThemeChoice): void {
  theme.value = choice;
  applyTheme(choice);
  try {
    if (choice === 'system') storage?.removeItem(THEME_KEY);
    else storage?.setItem(THEME_KEY, choice);
  } catch {
    /* not remembered: this page still uses it */
  }
}

/** Applies the remembered choice now, and follows a change made in another tab. */
export function initTheme(): void {
  applyTheme(theme.value);
  window.addEventListener('storage', (e) => {
    if (e.key !== THEME_KEY && e.key !== null) return;
    const next = storage ? readTheme(storage) : 'system';
    theme.value = next;
    applyTheme(next);
  });
}
