// Shapes of docs/api.md (protocol v1).

export interface User {
  id: string;
  username: string;
  displayName: string;
  email?: string;
}

export type Role = 'owner' | 'admin' | 'member';

export interface Member extends User {
  role: Role;
  online?: boolean;
  lastSeen?: string;
  /** This member's read marker (for "seen" after a reload). */
  readSeq?: number;
}

export interface Message {
  id: string;
  conversationId: string;
  seq: number;
  senderId: string;
  clientId: string;
  body: string;
  createdAt: string;
}

export interface Conversation {
  id: string;
  kind: 'direct' | 'group';
  title?: string;
  members: Member[];
  lastSeq: number;
  readSeq: number;
  unread: number;
  lastMessage: Message | null;
  lastActivity: string;
  createdAt: string;
}

export interface Session {
  user: User;
  accessToken: string;
  accessTokenExpiresAt: string;
  refreshTokenExpiresAt?: string;
}

export type ServerFrame =
  | { type: 'ready'; userId: string; sessionId: string; protocol: number; expiresAt: string }
  | { type: 'ack'; id: string; message: Message }
  | { type: 'message'; message: Message }
  | { type: 'synced'; cursors: Record<string, number> }
  | { type: 'typing'; conversationId: string; userId: string }
  | { type: 'presence'; userId: string; status: 'online' | 'offline'; lastSeen?: string }
  | { type: 'read'; conversationId: string; userId: string; seq: number }
  | { type: 'conversation'; conversation: Conversation }
  | { type: 'removed'; conversationId: string }
  | { type: 'resync'; conversationId?: string }
  | { type: 'error'; id?: string; code: string; message: string; retryAfter?: number }
  | { type: 'pong' };

export type ClientFrame =
  | { type: 'auth'; token: string }
  | { type: 'send'; id: string; conversationId: string; clientId: string; body: string }
  | { type: 'sync'; cursors: Record<string, number> }
  | { type: 'typing'; conversationId: string }
  | { type: 'read'; conversationId: string; seq: number }
  | { type: 'ping' };
