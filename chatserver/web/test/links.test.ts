import { describe, expect, it } from 'vitest';
import { conversationPath, messagePath, parseRoute } from '../src/links';

describe('message links', () => {
  it('round-trips conversation and message addresses, escaping what needs it', () => {
    expect(messagePath('c_1', 'm_2')).toBe('/c/c_1/m/m_2');
    expect(parseRoute(messagePath('c 1/x', 'm?2'))).toEqual({ conversationId: 'c 1/x', messageId: 'm?2' });
    expect(parseRoute(conversationPath('c_1'))).toEqual({ conversationId: 'c_1', messageId: null });
  });

  it('names nothing for other or malformed addresses', () => {
    for (const p of ['/', '/c/', '/c/a/b', '/c/a/m/', '/c/a/m/b/c', '/x/c/a', '/c/%E0%A4%A/m/x']) {
      expect(parseRoute(p), p).toEqual({ conversationId: null, messageId: null });
    }
  });
});
