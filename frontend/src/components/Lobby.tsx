import { useState, type FormEvent } from "react";

import { roomPath, useLinkHandler } from "../router";
import { MAX_ROOM_NAME_CHARS, type Room } from "../types";
import { LockIcon } from "./Icons";

interface LobbyProps {
  rooms: Room[] | null;
  problem: string | null;
  ready: boolean;
  onCreate: (name: string, sealed: boolean) => Promise<void>;
}

export function Lobby({ rooms, problem, ready, onCreate }: LobbyProps) {
  return (
    <main className="lobby" id="main">
      <section className="card create" aria-labelledby="create-title">
        <h1 id="create-title">Start a room</h1>
        <p className="muted">
          Anyone with the link can join. Leave the name empty and the room is named after an element. Rooms close by
          themselves once they go quiet.
        </p>
        <CreateRoom ready={ready} onCreate={onCreate} />
      </section>
      <section className="card rooms" aria-labelledby="rooms-title">
        <div className="rooms-head">
          <h2 id="rooms-title">Open rooms</h2>
          {rooms !== null && <span className="pill">{rooms.length}</span>}
        </div>
        {problem !== null && (
          <p className="notice notice-warn" role="status">
            Could not refresh the list: {problem}
          </p>
        )}
        <ul className="room-list" data-testid="room-list" aria-busy={rooms === null}>
          {(rooms ?? []).map((r) => (
            <RoomItem key={r.id} room={r} />
          ))}
        </ul>
        {rooms === null && problem === null && <p className="muted empty">Loading rooms…</p>}
        {rooms !== null && rooms.length === 0 && (
          <p className="muted empty">No open rooms right now. Start one and share its link.</p>
        )}
      </section>
    </main>
  );
}

function RoomItem({ room }: { room: Room }) {
  const path = roomPath(room.id);
  const onClick = useLinkHandler(path);
  const people = room.members === 1 ? "person" : "people";
  return (
    <li>
      <a className="room-item" data-testid="room-item" data-room-id={room.id} href={path} onClick={onClick}>
        <span className="room-item-name" data-testid="room-name">
          {room.name}
        </span>
        {room.sealed === true && <SealedMark />}
        <span className={room.members > 0 ? "room-item-members active" : "room-item-members"}>
          <span className="presence-dot" aria-hidden="true" />
          <span data-testid="room-members">{room.members}</span>
          <span className="room-item-unit"> {people}</span>
        </span>
        <span className="room-item-go" aria-hidden="true">
          →
        </span>
      </a>
    </li>
  );
}

/** SealedMark is the lock of a sealed room, in the room list and the room's header. */
export function SealedMark({ size = 15 }: { size?: number }) {
  return (
    <span className="sealed-mark" data-testid="sealed-mark" title="Sealed: end-to-end encrypted">
      <LockIcon size={size} />
      <span className="visually-hidden">sealed</span>
    </span>
  );
}

function CreateRoom({ ready, onCreate }: { ready: boolean; onCreate: (name: string, sealed: boolean) => Promise<void> }) {
  const [name, setName] = useState("");
  const [sealed, setSealed] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (busy) return;
    setBusy(true);
    setError(null);
    try {
      await onCreate(name, sealed);
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
      setBusy(false);
    }
  };

  return (
    <form className="create-form" onSubmit={submit}>
      <label className="visually-hidden" htmlFor="create-room-name">
        Room name, optional
      </label>
      <input
        id="create-room-name"
        className="input"
        data-testid="create-room-name"
        placeholder="Room name (optional)"
        value={name}
        onChange={(e) => setName(e.target.value)}
        maxLength={MAX_ROOM_NAME_CHARS * 2}
        autoComplete="off"
        aria-invalid={error !== null}
        aria-describedby={error !== null ? "create-error" : undefined}
      />
      <button type="submit" className="btn btn-primary" data-testid="create-room-button" disabled={busy || !ready}>
        {busy ? "Creating…" : "Create room"}
      </button>
      <label className="sealed-option">
        <input
          type="checkbox"
          data-testid="create-room-sealed"
          checked={sealed}
          onChange={(e) => setSealed(e.target.checked)}
          aria-describedby="sealed-hint"
        />
        <span>
          <LockIcon size={14} /> Sealed
        </span>
        <span id="sealed-hint" className="hint">
          End-to-end encrypted: only people with the full link can read it. No images.
        </span>
      </label>
      {error !== null && (
        <p className="field-error" id="create-error" role="alert">
          {error}
        </p>
      )}
    </form>
  );
}
