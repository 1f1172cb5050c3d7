// Wire types of the natter protocol (docs/protocol.md).

export interface Member {
  id: string;
  name: string;
  /** A registered account's display name (docs/accounts.md); not about signatures. */
  verified?: boolean;
}

/** The answer of POST /api/v1/token. */
export interface TokenResponse {
  jwt: string;
  expires_at: string;
  user: Member;
  servers: string[];
  inbox_prefix: string;
}

/** The profile of the signed-in account (GET /api/v1/users/me). */
export interface Profile {
  id: string;
  username: string;
  display_name: string;
  created_at: string;
  totp: { enabled: boolean; passwordless: boolean };
}

/** What anyone may read of an account (GET /api/v1/users/{id}). */
export interface PublicProfile {
  id: string;
  display_name: string;
  created_at: string;
}

/** The answer of POST /api/v1/sessions and of its refresh. */
export interface SessionGrant {
  session: string;
  expires_at: string;
  user?: Profile;
}

/** The answer of POST /api/v1/users/me/totp: the secret, and the PNG of its QR code in base64. */
export interface Enrolment {
  secret: string;
  otpauth_uri: string;
  qr_png: string;
}

/** A room as the room API lists it. */
export interface Room {
  id: string;
  name: string;
  created_at: string;
  expires_at: string;
  members: number;
  /** A sealed room (docs/sealed.md): its messages carry ct, encrypted with a key only the browsers hold. */
  sealed?: boolean;
}

/** The answer of POST /api/v1/rooms/{id}/uploads (docs/uploads.md). */
export interface Upload {
  upload_id: string;
  url: string;
  type: string;
  width: number;
  height: number;
  size: number;
}

/** What an image message's entry says of its image, from the upload's metadata. */
export interface ImageInfo {
  id: string;
  type: string;
  width: number;
  height: number;
  size: number;
}

export type EntryType = "message" | "image" | "join" | "leave";

/** A stored history entry, also what chat.<room>.msgs carries. */
export interface Envelope {
  room: string;
  seq: number;
  id?: string;
  type: EntryType;
  from: Member;
  text?: string;
  /** A sealed room's message: base64url of nonce ‖ ciphertext, in place of text. */
  ct?: string;
  /** An image message: the upload it shows, and what the gateway read of it. */
  upload?: string;
  image?: ImageInfo;
  sig?: string;
  sent_at: string;
}

export interface ErrorBody {
  code: string;
  message: string;
}

export interface Ack {
  ok: boolean;
  seq?: number;
  sent_at?: string;
  error?: ErrorBody;
}

export interface HistoryReply {
  ok: boolean;
  messages: Envelope[] | null;
  last_seq: number;
  error?: ErrorBody;
}

export interface JoinReply {
  ok: boolean;
  name?: string;
  members: Member[] | null;
  last_seq: number;
  error?: ErrorBody;
}

export interface Reply {
  ok: boolean;
  error?: ErrorBody;
}

/** An event on chat.<room>.members. */
export interface MemberEvent {
  type: "join" | "leave" | "rename" | "room_closed";
  room: string;
  member?: Member;
  seq?: number;
}

/** The longest message the gateway accepts by default, in code points. */
export const MAX_MESSAGE_CHARS = 1000;
/** The longest display name, in code points. */
export const MAX_NAME_CHARS = 32;
/** The longest room name, in code points. */
export const MAX_ROOM_NAME_CHARS = 48;

const roomIdPattern = /^[a-z0-9][a-z0-9-]{0,63}$/;

/** validRoomId reports whether id can be a room id. */
export function validRoomId(id: string): boolean {
  return roomIdPattern.test(id);
}
