// Shapes of docs/api.md (protocol v1).

export interface User {
  id: string;
  username: string;
  displayName: string;
  email?: string;
  /** Version of the profile photo (absent: none); changes with every new photo. */
  avatar?: string;
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
  /** Set once the text was edited. */
  editedAt?: string;
  /** Set on a tombstone (deleted for everyone, or expired): the body is empty. */
  deleted?: { by?: string; at: string; reason: 'deleted' | 'expired' };
  /** When a disappearing message will be deleted. */
  expiresAt?: string;
  /** The message this one answers, as it is now. */
  replyTo?: ReplyRef;
  /** Per emoji, in the order first added; `me`: I am among them. */
  reactions?: Reaction[];
  /** The server could not open it (its body is empty). */
  undecryptable?: boolean;
  /** Files sent with it (never on a tombstone). */
  attachments?: Attachment[];
  /** Ids of the members its text mentions (@username), as the server parsed them. */
  mentions?: string[];
  /** End-to-end encrypted conversations: the MLSMessage (base64) instead of `body`. */
  ciphertext?: string;
  /** Sent before this device joined the encrypted conversation (it has no keys for it). */
  beforeJoin?: boolean;
}

/** An uploaded file (docs/api.md "Attachments"). */
export interface Attachment {
  id: string;
  /** A label (sanitised by the server), not a path. */
  name: string;
  /** Sniffed by the server from the bytes. */
  contentType: string;
  /** Bytes. */
  size: number;
  /** Images: as displayed (orientation applied). */
  width?: number;
  height?: number;
  /** Audio whose container tells it (voice messages). */
  durationMs?: number;
  /** Images: a tiny blurred PNG as a data: URL. */
  preview?: string;
  /** GET …/thumbnail serves a smaller JPEG. */
  thumbnail?: boolean;
  /** Encrypted on the client (end-to-end encrypted conversations): how to decrypt it. */
  sealed?: import('./e2ee/payload').SealedFile;
}

export interface ReplyRef {
  id: string;
  seq: number;
  senderId: string;
  excerpt: string;
  deleted: boolean;
}

export interface Reaction {
  emoji: string;
  count: number;
  me: boolean;
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
  /** Disappearing messages, in seconds (0: off). */
  expireAfter?: number;
  /** When my mute of it ends (absent: not muted; 9999-12-31: until unmuted). */
  mutedUntil?: string;
  /** End-to-end encrypted (MLS); set at creation, never switched off. */
  e2ee?: boolean;
  /** The server's current MLS epoch of an encrypted conversation. */
  mlsEpoch?: number;
}

/** Form fields the server can name in an error (`error.field`). */
export type ErrorField = 'username' | 'email' | 'password' | 'displayName' | 'currentPassword' | 'newPassword' | 'login';

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
  /** A person's profile changed (my own from another session, or someone I share a conversation with). */
  | { type: 'user'; user: Pick<User, 'id' | 'username' | 'displayName'> }
  | { type: 'resync'; conversationId?: string }
  | { type: 'error'; id?: string; code: string; message: string; retryAfter?: number; epoch?: number }
  | { type: 'pong' }
  | { type: 'message_edited'; conversationId: string; messageId: string; seq: number; body: string; editedAt: string }
  | { type: 'message_deleted'; conversationId: string; messageId: string; seq: number; deletedBy?: string; deletedAt: string; reason: 'deleted' | 'expired' }
  | { type: 'reaction'; conversationId: string; messageId: string; seq: number; emoji: string; userId: string; added: boolean; counts: Array<{ emoji: string; count: number }> }
  | { type: 'conversation_settings'; conversationId: string; seq: number; expireAfter: number; changedBy: string; changedAt: string }
  /** An MLS commit of an encrypted conversation, in the conversation's seq order. */
  | { type: 'mls'; conversationId: string; seq: number; epoch: number; senderId: string; deviceId: string; commit: string }
  /** A Welcome waits for one of my devices (GET /devices/{id}/welcomes). */
  | { type: 'welcome'; conversationId: string; deviceId: string }
  /** A user's devices changed (mine, or someone sharing an encrypted conversation with me). */
  | { type: 'devices'; userId: string };

/** The change-event frames: each takes the next seq of its conversation, like a message. */
export type ChangeEvent = Extract<ServerFrame, { type: 'message_edited' | 'message_deleted' | 'reaction' | 'conversation_settings' }>;

export type ClientFrame =
  | { type: 'auth'; token: string }
  | { type: 'send'; id: string; conversationId: string; clientId: string; body?: string; ciphertext?: string; replyTo?: string; attachments?: string[] }
  | { type: 'edit'; id: string; conversationId: string; messageId: string; body: string }
  | { type: 'delete'; id: string; conversationId: string; messageId: string }
  | { type: 'react'; id: string; conversationId: string; messageId: string; emoji: string; remove?: boolean }
  | { type: 'sync'; cursors: Record<string, number> }
  | { type: 'typing'; conversationId: string }
  | { type: 'read'; conversationId: string; seq: number }
  | { type: 'ping' }
  /** Whether this page is visible: the server pushes only to people with no visible page. */
  | { type: 'visibility'; visible: boolean };
