import { signal } from '@preact/signals';

/**
 * Links to single messages: `/c/<conversationId>/m/<messageId>`. Opening one opens the
 * conversation and shows the message (loading older pages until it is there).
 */

/** The message an opened link asks for, until the conversation view has shown it. */
export const linkTarget = signal<{ conversationId: string; messageId: string } | null>(null);

export function conversationPath(conversationId: string): string {
  return `/c/${encodeURIComponent(conversationId)}`;
}

export function messagePath(conversationId: string, messageId: string): string {
  return `${conversationPath(conversationId)}/m/${encodeURIComponent(messageId)}`;
}

/** What an address names: a conversation, and maybe one of its messages. Null ids for anything else. */
export function parseRoute(pathname: string): { conversationId: string | null; messageId: string | null } {
  const m = /^\/c\/([^/]+)(?:\/m\/([^/]+))?\/?$/.exec(pathname);
  if (!m) return { conversationId: null, messageId: null };
  try {
    return { conversationId: decodeURIComponent(m[1]), messageId: m[2] ? decodeURIComponent(m[2]) : null };
  } catch {
    // A malformed %-escape names nothing.
    return { conversationId: null, messageId: null };
  }
}
