import { ApiError } from './api';

export type ErrorContext = 'login' | 'register' | 'send' | 'members' | 'password' | 'change' | 'settings' | 'profile' | 'general';

/**
 * The form field an error belongs to: the one the server names (`error.field`), else the
 * one the error can only be about in that form, else none (the form as a whole).
 */
export function errorField(e: unknown, ctx: ErrorContext): string | undefined {
  const err = e instanceof ApiError ? e : null;
  if (err?.field) return err.field;
  switch (err?.code) {
    case 'weak_password':
      return ctx === 'password' ? 'newPassword' : ctx === 'register' ? 'password' : undefined;
    case 'invalid_credentials':
      return ctx === 'password' ? 'currentPassword' : undefined;
    default:
      return ctx === 'profile' && err?.code === 'invalid_request' ? 'displayName' : undefined;
  }
}

/** Words a person understands for a server error code (docs/api.md "Errors"). */
export function describeError(e: unknown, ctx: ErrorContext = 'general'): string {
  const err = e instanceof ApiError ? e : null;
  const code = err?.code ?? (e && typeof e === 'object' && 'code' in e ? String((e as { code: unknown }).code) : 'network');
  const retryAfter = err?.retryAfter ?? (e && typeof e === 'object' && 'retryAfter' in e ? Number((e as { retryAfter: unknown }).retryAfter) : undefined);
  const serverMsg = err?.message ?? (e && typeof e === 'object' && 'message' in e ? String((e as { message: unknown }).message) : '');
  switch (code) {
    case 'network':
      return "Can't reach Parley right now. Check your connection and try again.";
    case 'invalid_request':
      return serverMsg ? `Please check what you entered: ${serverMsg}.` : 'Please check what you entered.';
    case 'message_empty':
      return 'Write something before sending.';
    case 'message_too_long': {
      // "the limit is 4000" (server) or "longer than 4000 characters" (docs/api.md example).
      const n = (/limit is (\d[\d,]*)/.exec(serverMsg) ?? /than (\d[\d,]*) characters/.exec(serverMsg))?.[1]?.replace(/,/g, '');
      const limit = n ? Number(n).toLocaleString('en-US') : '4,000';
      return `That message is too long. Please shorten it (${limit} characters at most).`;
    }
    case 'request_too_large':
      return 'That is too much to send at once.';
    case 'weak_password':
      return 'Please choose a stronger password: 8 to 128 characters, and not a commonly used one.';
    case 'invalid_credentials':
      if (ctx === 'password') return 'Your current password is not right. Please try again.';
      return "That username or email and password don't match. Please try again.";
    case 'unauthorized':
    case 'invalid_refresh_token':
    case 'token_reused':
      return 'Your session has ended. Please sign in again.';
    case 'forbidden':
      if (ctx === 'change') return "You can't change that message: only your own messages can be edited (within a day of sending), and only a group's owner or admins can delete others' messages.";
      if (ctx === 'settings') return "Only the group's owner or admins can change disappearing messages.";
      return "You don't have permission to do that. Only the group's owner or admins can.";
    case 'not_found':
      return ctx === 'send'
        ? 'Not sent: you are not a member of this conversation any more.'
        : "That isn't available. It may have been removed, or you are not a member.";
    case 'conflict':
      if (ctx === 'register' && err?.field === 'username') return 'That username is taken. Please choose another.';
      if (ctx === 'register' && err?.field === 'email') return 'An account with that email already exists. Sign in instead, or use another email.';
      if (ctx === 'register') return 'That username or email is already taken.';
      if (ctx === 'members') return 'That person is already a member.';
      if (ctx === 'change') return 'That message was deleted, or has as many different reactions as it can.';
      return 'That already exists.';
    case 'rate_limited': {
      const s = retryAfter && Number.isFinite(retryAfter) ? Math.ceil(retryAfter) : 0;
      return s > 0
        ? `You're going a bit fast. Please wait ${s} second${s === 1 ? '' : 's'} and try again.`
        : "You're going a bit fast. Please wait a moment and try again.";
    }
    case 'unavailable':
      return 'Parley is having trouble right now and nothing was saved. Please try again in a moment.';
    case 'internal':
      return 'Something went wrong on our side. Please try again.';
    case 'timeout':
      return ctx === 'change' ? 'The server did not answer in time. Please try again.' : 'Not sent: the server did not answer in time.';
    default:
      return 'Something went wrong. Please try again.';
  }
}
