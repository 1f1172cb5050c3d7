import { memo, useCallback, useLayoutEffect, useRef, useState } from "react";

import type { LocalMessage, ViewEntry } from "../nats";
import { colourIndex, initials, linkify } from "../text";
import type { Member } from "../types";
import { formatBytes } from "../api";
import { CheckIcon, ImageIcon, LockIcon, WarningIcon } from "./Icons";
import { ImageThumb, Lightbox, type ImageSource, type OpenImage } from "./Images";
import { RegisteredMark } from "./Registered";

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "medium" });

function formatTime(iso: string): { short: string; full: string } {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return { short: "", full: "" };
  return { short: timeFormat.format(d), full: fullFormat.format(d) };
}

/** MessageText renders a message as text, with its http(s) URLs as links. */
export function MessageText({ text }: { text: string }) {
  return (
    <>
      {linkify(text).map((s, i) =>
        s.href !== undefined ? (
          <a key={i} href={s.href} target="_blank" rel="noopener noreferrer">
            {s.text}
          </a>
        ) : (
          s.text
        ),
      )}
    </>
  );
}

function Avatar({ member }: { member: Member }) {
  return (
    <span className={`avatar avatar-${colourIndex(member.id, 8)}`} aria-hidden="true">
      {initials(member.name)}
    </span>
  );
}

interface EntryProps {
  e: ViewEntry;
  images: ImageSource;
  onOpenImage: (img: OpenImage) => void;
}

const Entry = memo(function Entry({ e, images, onOpenImage }: EntryProps) {
  const t = formatTime(e.sentAt);
  const common = {
    "data-testid": "entry",
    "data-seq": String(e.seq),
    "data-type": e.type,
    "data-own": String(e.own),
    "data-verified": String(e.verified),
    // A registered account's name; data-verified is the signature check.
    "data-registered": String(e.from.verified === true),
  };
  const mark = e.from.verified === true ? <RegisteredMark size={15} /> : null;
  if (e.type !== "message" && e.type !== "image") {
    return (
      <li {...common} className="entry entry-event">
        <span className="event-line">
          <span data-testid="entry-author" className="event-author">
            {e.from.name}
          </span>
          {mark}{" "}
          <span data-testid="entry-text">{e.type === "join" ? "joined" : "left"}</span>
          <span aria-hidden="true"> · </span>
          <time data-testid="entry-time" dateTime={e.sentAt} title={t.full}>
            {t.short}
          </time>
        </span>
      </li>
    );
  }
  return (
    <li {...common} className={`entry entry-msg${e.own ? " own" : ""}${e.verified ? "" : " unverified"}`}>
      {!e.own && <Avatar member={e.from} />}
      <div className="bubble">
        <div className="meta">
          <span data-testid="entry-author" className="author">
            {e.from.name}
          </span>
          {mark}
          <time data-testid="entry-time" dateTime={e.sentAt} title={t.full}>
            {t.short}
          </time>
          {e.verified ? (
            <span className="verified" title="Signed with the sender’s key; the signature checks out.">
              <CheckIcon size={13} />
              <span className="visually-hidden">verified</span>
            </span>
          ) : null}
        </div>
        {!e.verified && (
          <p className="sig-warning" role="note">
            <WarningIcon size={14} />
            Signature check failed: this message may not be from {e.from.name}.
          </p>
        )}
        {e.type === "image" && (
          <ImageThumb
            uploadId={e.upload ?? ""}
            info={e.image}
            alt={e.text !== "" ? e.text : `Image from ${e.from.name}`}
            load={images.load}
            onOpen={onOpenImage}
          />
        )}
        {e.undecryptable === true ? (
          <p data-testid="entry-undecryptable" className="text undecryptable">
            <LockIcon size={14} />
            Could not be decrypted: this message was sealed with another key, or altered.
          </p>
        ) : (
          <p data-testid="entry-text" className={e.type === "image" ? "text caption" : "text"} dir="auto">
            <MessageText text={e.text} />
          </p>
        )}
      </div>
    </li>
  );
});

interface PendingProps {
  m: LocalMessage;
  author: string;
  registered: boolean;
  onRetry: (id: string) => void;
  onDismiss: (id: string) => void;
}

const Pending = memo(function Pending({ m, author, registered, onRetry, onDismiss }: PendingProps) {
  const failed = m.status === "failed";
  return (
    <li
      data-testid="entry"
      data-seq=""
      data-type="message"
      data-own="true"
      data-verified="true"
      data-registered={String(registered)}
      data-status={m.status}
      data-error-code={m.errorCode}
      className={`entry entry-msg own ${failed ? "failed" : "sending"}${m.image !== undefined ? " image" : ""}`}
    >
      <div className="bubble">
        <div className="meta">
          <span data-testid="entry-author" className="author">
            {author}
          </span>
          {registered && <RegisteredMark size={15} />}
          <span data-testid="entry-time" className="status-text">
            {failed ? "Not sent" : m.waiting ? "Waiting for the connection…" : m.status === "uploading" ? "Uploading…" : "Sending…"}
          </span>
        </div>
        {m.image !== undefined && (
          <div className="upload-card">
            <ImageIcon size={20} />
            <div className="upload-info">
              <span className="upload-name">{m.image.name}</span>
              <span className="upload-size">{formatBytes(m.image.size)}</span>
              {m.status === "uploading" && (
                <progress
                  className="upload-progress"
                  data-testid="upload-progress"
                  max={1}
                  value={m.image.progress}
                  aria-label={`Uploading ${m.image.name}`}
                  aria-valuetext={`${Math.round(m.image.progress * 100)}%`}
                />
              )}
            </div>
            {m.status === "uploading" && (
              <button type="button" className="btn btn-small btn-ghost upload-cancel" data-testid="upload-cancel" onClick={() => onDismiss(m.id)}>
                Cancel
              </button>
            )}
          </div>
        )}
        <p data-testid="entry-text" className={m.image !== undefined ? "text caption" : "text"} dir="auto">
          <MessageText text={m.text} />
        </p>
        {failed && (
          <div className="failure">
            <p data-testid="entry-error" className="entry-error" role="alert">
              {m.error}
            </p>
            <div className="failure-actions">
              {m.retryable && (
                <button type="button" className="btn btn-small btn-ghost" onClick={() => onRetry(m.id)}>
                  Retry
                </button>
              )}
              <button type="button" className="btn btn-small btn-ghost" onClick={() => onDismiss(m.id)}>
                Remove
              </button>
            </div>
          </div>
        )}
      </div>
    </li>
  );
});

interface ListProps {
  entries: ViewEntry[];
  local: LocalMessage[];
  loading: boolean;
  myName: string;
  registered: boolean;
  onRetry: (id: string) => void;
  onDismiss: (id: string) => void;
  images: ImageSource;
}

/**
 * MessageList shows the room's entries, then this user's messages on their
 * way. It stays scrolled to the newest entry unless the person scrolled up
 * to read, and then offers a way down.
 */
export function MessageList({ entries, local, loading, myName, registered, onRetry, onDismiss, images }: ListProps) {
  const [openImage, setOpenImage] = useState<OpenImage | null>(null);
  const closeImage = useCallback(() => setOpenImage(null), []);
  const scroller = useRef<HTMLDivElement>(null);
  const atBottom = useRef(true);
  const [unseen, setUnseen] = useState(0);
  const seen = useRef({ entries: 0, local: 0, lastSeq: 0 });

  const onScroll = useCallback(() => {
    const el = scroller.current;
    if (el === null) return;
    atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 48;
    if (atBottom.current) setUnseen(0);
  }, []);

  const lastSeq = entries.length > 0 ? entries[entries.length - 1]!.seq : 0;
  useLayoutEffect(() => {
    const el = scroller.current;
    if (el === null) return;
    const prev = seen.current;
    const sentByMe = local.length > prev.local;
    const newEntries = entries.filter((e) => e.seq > prev.lastSeq);
    if (atBottom.current || sentByMe || prev.entries === 0) {
      el.scrollTop = el.scrollHeight;
      atBottom.current = true;
      setUnseen(0);
    } else if (newEntries.length > 0) {
      setUnseen((n) => n + newEntries.filter((e) => !e.own).length);
    }
    seen.current = { entries: entries.length, local: local.length, lastSeq };
  }, [entries, local, lastSeq]);

  const toBottom = () => {
    const el = scroller.current;
    if (el === null) return;
    el.scrollTo({ top: el.scrollHeight, behavior: "smooth" });
    setUnseen(0);
  };

  return (
    <div className="scroller" ref={scroller} onScroll={onScroll} tabIndex={0} aria-label="Messages">
      {loading && entries.length === 0 && <p className="muted center loading">Loading messages…</p>}
      {!loading && entries.length === 0 && local.length === 0 && (
        <p className="muted center empty-room">No messages yet. Say hello!</p>
      )}
      <ol className="message-list" data-testid="message-list">
        {entries.map((e) => (
          <Entry key={e.seq} e={e} images={images} onOpenImage={setOpenImage} />
        ))}
        {local.map((m) => (
          <Pending key={m.id} m={m} author={myName} registered={registered} onRetry={onRetry} onDismiss={onDismiss} />
        ))}
      </ol>
      {unseen > 0 && (
        <button type="button" className="btn btn-primary jump" onClick={toBottom}>
          {unseen === 1 ? "1 new message" : `${unseen} new messages`} ↓
        </button>
      )}
      <Lightbox image={openImage} link={images.link} onClose={closeImage} />
    </div>
  );
}
