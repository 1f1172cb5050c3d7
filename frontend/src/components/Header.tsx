import { useEffect, useRef, useState, type FormEvent, type KeyboardEvent } from "react";

import type { ConnState } from "../nats";
import { useLinkHandler } from "../router";
import { MAX_NAME_CHARS, type Profile } from "../types";
import { AccountMenu, type AccountActions } from "./Account";
import { RegisteredMark } from "./Registered";

const connLabels: Record<ConnState, string> = {
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting…",
  offline: "Offline",
};

export function ConnIndicator({ state }: { state: ConnState }) {
  return (
    <span className={`conn conn-${state}`} data-testid="conn-state" data-state={state} role="status" title={connTitle(state)}>
      <span className="conn-dot" aria-hidden="true" />
      <span className="conn-label">{connLabels[state]}</span>
    </span>
  );
}

function connTitle(state: ConnState): string {
  switch (state) {
    case "connected":
      return "Connected to natter";
    case "connecting":
      return "Connecting to natter";
    case "reconnecting":
      return "The connection dropped; reconnecting. Nothing you missed will be lost.";
    case "offline":
      return "No connection; retrying in the background.";
  }
}

interface NameProps {
  name: string | null;
  /** The name is a registered account's. */
  registered?: boolean;
  onRename: (name: string) => Promise<void>;
}

/** NameEditor shows the display name and lets the person change it. */
export function NameEditor({ name, registered = false, onRename }: NameProps) {
  const [editing, setEditing] = useState(false);
  const [draft, setDraft] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  const button = useRef<HTMLButtonElement>(null);
  const wasEditing = useRef(false);

  useEffect(() => {
    if (editing) input.current?.select();
    else if (wasEditing.current) button.current?.focus();
    wasEditing.current = editing;
  }, [editing]);

  const start = () => {
    setDraft(name ?? "");
    setError(null);
    setEditing(true);
  };

  const save = async (e?: FormEvent) => {
    e?.preventDefault();
    if (busy) return;
    setBusy(true);
    try {
      await onRename(draft);
      setEditing(false);
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };

  const onKeyDown = (e: KeyboardEvent<HTMLInputElement>) => {
    if (e.key === "Escape") {
      e.preventDefault();
      setEditing(false);
    }
  };

  if (!editing) {
    return (
      <div className="me">
        <span className="me-label">You are</span>
        <span className="me-name" data-testid="me-name" aria-live="polite">
          {name ?? "…"}
        </span>
        {registered && name !== null && <RegisteredMark />}
        <button
          ref={button}
          type="button"
          className="btn btn-ghost btn-small"
          data-testid="rename-button"
          onClick={start}
          disabled={name === null}
          aria-label="Change your name"
        >
          Rename
        </button>
      </div>
    );
  }
  return (
    <form className="me me-editing" onSubmit={save}>
      <label className="visually-hidden" htmlFor="rename-input">
        Your name
      </label>
      <input
        ref={input}
        id="rename-input"
        className="input input-small"
        data-testid="rename-input"
        value={draft}
        onChange={(e) => setDraft(e.target.value)}
        onKeyDown={onKeyDown}
        maxLength={MAX_NAME_CHARS * 2}
        autoComplete="nickname"
        aria-invalid={error !== null}
        aria-describedby={error !== null ? "rename-error" : undefined}
        disabled={busy}
      />
      <button type="submit" className="btn btn-primary btn-small" disabled={busy}>
        Save
      </button>
      <button type="button" className="btn btn-ghost btn-small" onClick={() => setEditing(false)}>
        Cancel
      </button>
      {error !== null && (
        <p className="field-error me-error" id="rename-error" role="alert">
          {error}
        </p>
      )}
    </form>
  );
}

interface HeaderProps extends NameProps {
  conn: ConnState;
  profile: Profile | null;
  accountNotice: string | null;
  account: AccountActions;
}

export function Header({ conn, name, onRename, profile, accountNotice, account }: HeaderProps) {
  const home = useLinkHandler("/");
  return (
    <header className="topbar">
      <a className="brand" href="/" onClick={home}>
        <span className="brand-mark" aria-hidden="true" />
        natter
      </a>
      <ConnIndicator state={conn} />
      <NameEditor name={name} registered={profile !== null && name === profile.display_name} onRename={onRename} />
      <AccountMenu profile={profile} notice={accountNotice} actions={account} />
    </header>
  );
}
