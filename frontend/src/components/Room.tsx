import { useEffect, useRef, useState, type ClipboardEvent, type DragEvent, type FormEvent, type KeyboardEvent } from "react";

import { checkUpload, formatBytes } from "../api";
import type { RoomState } from "../nats";
import { codePoints } from "../text";
import { MAX_MESSAGE_CHARS, type Member } from "../types";
import { BackIcon, CloseIcon, ImageIcon, LinkIcon, LockIcon, MoonIcon, PaperclipIcon, PeopleIcon, SearchIcon } from "./Icons";
import type { ImageSource } from "./Images";
import { SealedMark } from "./Lobby";
import { MessageList } from "./Messages";
import { RegisteredMark } from "./Registered";

export interface RoomActions {
  onBack: () => void;
  onCopyLink: () => Promise<boolean>;
  onSend: (text: string) => void;
  /** Uploads an image and sends it with a caption (maybe empty). */
  onSendImage: (file: File, caption: string) => void;
  images: ImageSource;
  onTyping: () => void;
  onRetry: (id: string) => void;
  onDismiss: (id: string) => void;
}

/** The image waiting in the composer to go with the next send, or why a file was not taken. */
interface Attachment {
  file: File | null;
  error: string | null;
}

/**
 * pickAttachment takes the first of files (a drop or a paste may bring
 * several): the file to attach, or why it cannot go, before a byte is sent.
 */
export function pickAttachment(files: readonly { name: string; size: number }[]): { index: number; error: string | null } {
  if (files.length === 0) return { index: -1, error: null };
  const error = checkUpload(files[0]!);
  if (error !== null) return { index: -1, error };
  return { index: 0, error: files.length > 1 ? "One image at a time: the first one is attached." : null };
}

/** hasFiles reports whether a drag carries files (not text or a link from the page). */
function hasFiles(e: DragEvent): boolean {
  return Array.from(e.dataTransfer.types).includes("Files");
}

interface RoomProps extends RoomActions {
  room: RoomState;
  meId: string;
  myName: string;
  /** This user is signed in to an account: their unsent messages go out under its name. */
  registered: boolean;
}

export function RoomView({ room, meId, myName, registered, ...actions }: RoomProps) {
  const [showMembers, setShowMembers] = useState(false);
  const [attachment, setAttachment] = useState<Attachment>({ file: null, error: null });
  const [dragging, setDragging] = useState(false);
  const loading = room.phase === "loading";
  // Images would go out unencrypted, so a sealed room takes none.
  const imagesAllowed = !room.sealed;
  // An image picked while the room was loading goes when it turns out sealed.
  useEffect(() => {
    if (!imagesAllowed) setAttachment({ file: null, error: null });
  }, [imagesAllowed]);
  const attach = (files: File[]) => {
    if (!imagesAllowed) return;
    const pick = pickAttachment(files);
    if (pick.index < 0 && pick.error === null) return;
    setAttachment((a) => ({ file: pick.index >= 0 ? files[pick.index]! : a.file, error: pick.error }));
  };
  const dragProps = {
    onDragEnter: (e: DragEvent) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      setDragging(true);
    },
    onDragOver: (e: DragEvent) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      e.dataTransfer.dropEffect = "copy";
    },
    onDragLeave: (e: DragEvent) => {
      // Leaving for a child is no leaving.
      if (!(e.relatedTarget instanceof Node && e.currentTarget.contains(e.relatedTarget))) setDragging(false);
    },
    onDrop: (e: DragEvent) => {
      setDragging(false);
      if (!hasFiles(e)) return;
      e.preventDefault();
      attach(Array.from(e.dataTransfer.files));
    },
  };
  return (
    <main className="room" id="main">
      <div className="room-bar">
        <button type="button" className="btn btn-ghost back" data-testid="back-to-rooms" onClick={actions.onBack}>
          <BackIcon /> Rooms
        </button>
        <h1 className="room-title" data-testid="room-title" title={room.id}>
          {room.sealed && <SealedMark size={16} />}
          {room.name || room.id}
        </h1>
        <CopyLink onCopy={actions.onCopyLink} />
        <button
          type="button"
          className="btn btn-ghost members-toggle"
          aria-expanded={showMembers}
          aria-controls="members-panel"
          onClick={() => setShowMembers((s) => !s)}
        >
          <PeopleIcon /> {room.members.length}
          <span className="visually-hidden"> members</span>
        </button>
      </div>
      {loading && room.problem !== null && (
        <p className="notice notice-warn" role="status">
          {room.problem} Retrying…
        </p>
      )}
      <div className="room-body">
        <section className={dragging ? "chat dragging" : "chat"} aria-label="Conversation" data-testid="conversation" {...dragProps}>
          {dragging && (
            <div className="drop-overlay" aria-hidden="true">
              <ImageIcon size={28} />
              Drop an image to attach it
            </div>
          )}
          <MessageList
            entries={room.entries}
            local={room.local}
            loading={loading}
            myName={room.myName ?? myName}
            registered={registered}
            onRetry={actions.onRetry}
            onDismiss={actions.onDismiss}
            images={actions.images}
          />
          <Typing ids={room.typing} members={room.members} />
          <Composer
            roomName={room.name || room.id}
            disabled={loading}
            onSend={actions.onSend}
            onSendImage={actions.onSendImage}
            onTyping={actions.onTyping}
            attachment={attachment}
            onAttach={attach}
            onClearAttachment={() => setAttachment({ file: null, error: null })}
            imagesAllowed={imagesAllowed}
          />
        </section>
        <aside
          id="members-panel"
          className={showMembers ? "members-panel open" : "members-panel"}
          aria-label="Members"
        >
          <h2>
            In the room <span className="pill">{room.members.length}</span>
          </h2>
          <ul className="member-list" data-testid="member-list">
            {room.members.map((m) => (
              <li key={m.id} className="member-row">
                <span className="presence-dot" aria-hidden="true" />
                <span data-testid="member" className="member-name" data-registered={String(m.verified === true)}>
                  {m.name}
                </span>
                {m.verified === true && <RegisteredMark size={15} />}
                {m.id === meId && <span className="you">you</span>}
              </li>
            ))}
          </ul>
        </aside>
      </div>
    </main>
  );
}

function CopyLink({ onCopy }: { onCopy: () => Promise<boolean> }) {
  const [state, setState] = useState<"idle" | "copied" | "failed">("idle");
  useEffect(() => {
    if (state === "idle") return;
    const t = setTimeout(() => setState("idle"), 2000);
    return () => clearTimeout(t);
  }, [state]);
  return (
    <button
      type="button"
      className="btn btn-ghost copy"
      data-testid="copy-link"
      onClick={async () => setState((await onCopy()) ? "copied" : "failed")}
    >
      <LinkIcon />
      <span aria-live="polite">
        {state === "copied" ? "Link copied" : state === "failed" ? "Copy failed" : "Copy link"}
      </span>
    </button>
  );
}

/** typingText says who is typing, by their names in the member list. */
export function typingText(ids: string[], members: Member[]): string {
  const names = ids.map((id) => members.find((m) => m.id === id)?.name).filter((n): n is string => n !== undefined);
  if (names.length === 0) return "";
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  return "Several people are typing…";
}

function Typing({ ids, members }: { ids: string[]; members: Member[] }) {
  const text = typingText(ids, members);
  return (
    <div className="typing" data-testid="typing">
      {text !== "" && (
        <>
          <span className="typing-dots" aria-hidden="true">
            <span />
            <span />
            <span />
          </span>
          {text}
        </>
      )}
    </div>
  );
}

interface ComposerProps {
  roomName: string;
  disabled: boolean;
  onSend: (text: string) => void;
  onSendImage: (file: File, caption: string) => void;
  onTyping: () => void;
  attachment: Attachment;
  onAttach: (files: File[]) => void;
  onClearAttachment: () => void;
  /** False in a sealed room: the attach button is disabled and says why. */
  imagesAllowed: boolean;
}

/** tooLongText is the composer's error for a message over the limit. */
export function tooLongText(count: number): string {
  return `Too long: ${count} of ${MAX_MESSAGE_CHARS} characters`;
}

function Composer({
  roomName,
  disabled,
  onSend,
  onSendImage,
  onTyping,
  attachment,
  onAttach,
  onClearAttachment,
  imagesAllowed,
}: ComposerProps) {
  const [text, setText] = useState("");
  const [error, setError] = useState<string | null>(null);
  const area = useRef<HTMLTextAreaElement>(null);
  const picker = useRef<HTMLInputElement>(null);
  const count = codePoints(text);
  const left = MAX_MESSAGE_CHARS - count;
  const over = left < 0;
  const file = attachment.file;
  const shownError = over ? tooLongText(count) : (error ?? attachment.error);

  // Attached: the next keys are the caption, and Enter sends both.
  useEffect(() => {
    if (file !== null) area.current?.focus();
  }, [file]);

  const onPaste = (e: ClipboardEvent<HTMLTextAreaElement>) => {
    const images = Array.from(e.clipboardData.files).filter((f) => f.type.startsWith("image/"));
    if (images.length === 0 || !imagesAllowed) return; // text: pasted as usual
    e.preventDefault();
    setError(null);
    onAttach(images);
  };

  useEffect(() => {
    // Not on touch screens, where focus would pop up the keyboard over the messages.
    if (!disabled && window.matchMedia("(pointer: fine)").matches) area.current?.focus();
  }, [disabled]);

  const send = (e?: FormEvent) => {
    e?.preventDefault();
    if (over) {
      area.current?.focus();
      return;
    }
    const message = text.trim();
    if (message === "" && file === null) return;
    if (disabled) {
      setError("Still connecting to the room; try again in a moment.");
      return;
    }
    if (file !== null) onSendImage(file, message);
    else onSend(message);
    onClearAttachment();
    setText("");
    setError(null);
    area.current?.focus();
  };

  const sendsOnEnter = (e: KeyboardEvent<HTMLTextAreaElement>) =>
    e.key === "Enter" && !e.shiftKey && !e.nativeEvent.isComposing;

  const onKeyDown = (e: KeyboardEvent<HTMLTextAreaElement>) => {
    if (sendsOnEnter(e)) {
      e.preventDefault();
      send();
    }
  };

  // Enter's character event can come apart from its keydown (input that
  // does not come from a keyboard, such as automation); it must not leave
  // a line break in the emptied composer.
  const onKeyPress = (e: KeyboardEvent<HTMLTextAreaElement>) => {
    if (sendsOnEnter(e)) e.preventDefault();
  };

  return (
    <form className="composer" onSubmit={send}>
      <div className="attachment-slot" aria-live="polite">
        {file !== null && (
          <div className="attachment" data-testid="attachment">
            <ImageIcon size={18} />
            <span className="attachment-name">{file.name || "Pasted image"}</span>
            <span className="attachment-size">{formatBytes(file.size)}</span>
            <button
              type="button"
              className="btn btn-small btn-ghost attachment-remove"
              data-testid="attachment-remove"
              aria-label={`Remove ${file.name || "the image"}`}
              onClick={() => {
                onClearAttachment();
                area.current?.focus();
              }}
            >
              <CloseIcon size={15} />
            </button>
          </div>
        )}
      </div>
      <div className={over ? "composer-box over" : "composer-box"}>
        <button
          type="button"
          className="btn btn-ghost attach"
          data-testid="attach-button"
          aria-label={imagesAllowed ? "Attach an image" : "No images in a sealed room"}
          title={
            imagesAllowed
              ? "Attach an image (or paste one, or drop it on the conversation)"
              : "No images in a sealed room: they would not be encrypted"
          }
          disabled={!imagesAllowed}
          onClick={() => picker.current?.click()}
        >
          <PaperclipIcon />
        </button>
        {/* The server reads the type from the bytes; accept only steers the picker. */}
        <input
          ref={picker}
          type="file"
          className="visually-hidden"
          data-testid="attach-input"
          accept="image/png,image/jpeg,image/gif,image/webp"
          tabIndex={-1}
          aria-hidden="true"
          onChange={(e) => {
            const files = Array.from(e.target.files ?? []);
            e.target.value = ""; // the same file again is a change too
            setError(null);
            onAttach(files);
          }}
        />
        <textarea
          ref={area}
          className="composer-input"
          data-testid="composer"
          rows={1}
          value={text}
          placeholder={file !== null ? "Add a caption (optional)" : `Message ${roomName}`}
          aria-label={`Message ${roomName}`}
          aria-invalid={over}
          aria-describedby="char-counter composer-hint"
          onChange={(e) => {
            setText(e.target.value);
            setError(null);
            if (e.target.value.trim() !== "") onTyping();
          }}
          onKeyDown={onKeyDown}
          onKeyPress={onKeyPress}
          onPaste={onPaste}
        />
        {/* Never disabled: a click on an over-long message explains why it was not sent. */}
        <button type="submit" className={over ? "btn btn-primary send blocked" : "btn btn-primary send"} data-testid="send-button">
          Send
        </button>
      </div>
      <div className="composer-foot">
        <span id="composer-hint" className="hint">
          <kbd>Enter</kbd> to send, <kbd>Shift</kbd>+<kbd>Enter</kbd> for a new line
        </span>
        {shownError !== null && (
          <span className="field-error" data-testid="composer-error" role="alert">
            {shownError}
          </span>
        )}
        <span
          id="char-counter"
          className={over ? "counter over" : left <= 100 ? "counter low" : "counter"}
          data-testid="char-counter"
          title="Characters left"
        >
          {left}
        </span>
      </div>
    </form>
  );
}

/**
 * SealedLocked is shown for a sealed room opened without its key (the link
 * lacked its fragment): nothing of the room is read or shown, and nothing
 * can be sent.
 */
export function SealedLocked({ name, onBack }: { name: string; onBack: () => void }) {
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => heading.current?.focus(), []);
  return (
    <main className="closed" id="main" data-testid="sealed-locked">
      <div className="card closed-card">
        <div className="closed-icon">
          <LockIcon size={30} />
        </div>
        <h1 ref={heading} tabIndex={-1}>
          This room is sealed: ask for the full link
        </h1>
        <p className="muted">
          {name ? `${name} is` : "This room is"} end-to-end encrypted. Its key is the part of the link after
          the #, which this link lacks, so its messages cannot be read here. Ask someone in the room for the full link.
        </p>
        <button type="button" className="btn btn-primary" data-testid="back-to-rooms" onClick={onBack}>
          Back to rooms
        </button>
      </div>
    </main>
  );
}

interface ClosedProps {
  phase: "closed" | "unknown";
  name: string;
  onBack: () => void;
}

/** RoomClosed is shown for a room that closed, or a link to a room that is not open. */
export function RoomClosed({ phase, name, onBack }: ClosedProps) {
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => heading.current?.focus(), []);
  return (
    <main className="closed" id="main" data-testid="room-closed">
      <div className="card closed-card">
        <div className="closed-icon">{phase === "closed" ? <MoonIcon size={30} /> : <SearchIcon size={30} />}</div>
        <h1 ref={heading} tabIndex={-1}>
          {phase === "closed" ? (name ? `${name} has closed` : "This room has closed") : "Room not found"}
        </h1>
        <p className="muted">
          {phase === "closed"
            ? "Rooms close once nobody has been in them for a while, and at the latest some hours after they were made. Its messages are gone with it."
            : "There is no open room at this link. It may have closed, or the link may be incomplete."}
        </p>
        <button type="button" className="btn btn-primary" data-testid="back-to-rooms" onClick={onBack}>
          Back to rooms
        </button>
      </div>
    </main>
  );
}
