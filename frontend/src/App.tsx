import { useCallback, useEffect, useMemo, useSyncExternalStore } from "react";

import type { AccountActions } from "./components/Account";

import { Header } from "./components/Header";
import { Lobby } from "./components/Lobby";
import { RoomClosed, RoomView, SealedLocked } from "./components/Room";
import type { Session } from "./nats";
import { navigate, roomPath, useRoute } from "./router";
import { exportRoomKey, generateRoomKey, keepRoomKey } from "./sealed";

const ROOMS_REFRESH_MS = 4_000;

export function App({ session }: { session: Session }) {
  const state = useSyncExternalStore(session.subscribe, session.getState);
  const route = useRoute();
  const roomId = route.page === "room" ? route.id : null;

  useEffect(() => session.start(), [session]);

  useEffect(() => {
    if (roomId !== null) session.openRoom(roomId);
    else session.closeRoom();
  }, [session, roomId]);

  useEffect(() => {
    if (roomId !== null) return;
    void session.refreshRooms();
    const t = setInterval(() => {
      if (document.visibilityState === "visible") void session.refreshRooms();
    }, ROOMS_REFRESH_MS);
    const onVisible = () => document.visibilityState === "visible" && void session.refreshRooms();
    document.addEventListener("visibilitychange", onVisible);
    return () => {
      clearInterval(t);
      document.removeEventListener("visibilitychange", onVisible);
    };
  }, [session, roomId]);

  const room = state.room;
  useEffect(() => {
    document.title = room === null ? "natter" : `${room.name || room.id} · natter`;
  }, [room?.name, room?.id, room === null]);

  const onRename = useCallback((name: string) => session.rename(name), [session]);
  const account = useMemo<AccountActions>(() => {
    const a = session.account;
    return {
      login: (username, password, code) => a.login(username, password, code),
      signup: (username, password, displayName) => a.signup(username, password, displayName),
      logout: () => a.logout(),
      // Through the session: a new name also needs a new token and a rejoin.
      rename: (name) => session.rename(name),
      changePassword: (oldPassword, password) => a.changePassword(oldPassword, password),
      startTotp: (passwordless) => a.startTotp(passwordless),
      confirmTotp: (code) => a.confirmTotp(code),
      disableTotp: (code) => a.disableTotp(code),
      deleteAccount: (proof) => a.deleteAccount(proof),
      dismissNotice: () => a.dismissNotice(),
    };
  }, [session]);
  const onCreate = useCallback(
    async (name: string, sealed: boolean) => {
      if (!sealed) {
        navigate(roomPath(await session.createRoom(name)));
        return;
      }
      // The key is made before the room, so that a browser without
      // WebCrypto makes no room it could not use.
      const key = await exportRoomKey(await generateRoomKey());
      const id = await session.createRoom(name, true);
      keepRoomKey(id, key);
      // Only in the fragment, which no request carries.
      navigate(`${roomPath(id)}#k=${key}`);
    },
    [session],
  );
  const onBack = useCallback(() => navigate("/"), []);
  const onCopyLink = useCallback(async () => {
    if (roomId === null) return false;
    return copyText(await session.roomLink(window.location.origin, roomPath(roomId)));
  }, [session, roomId]);
  const onSend = useCallback((text: string) => session.send(text), [session]);
  const onSendImage = useCallback((file: File, caption: string) => session.sendImage(file, caption), [session]);
  const images = useMemo(
    () => ({
      load: (id: string, signal: AbortSignal) => session.loadImage(id, signal),
      link: (id: string) => session.imageLink(id),
    }),
    [session],
  );
  const onTyping = useCallback(() => session.typing(), [session]);
  const onRetry = useCallback((id: string) => session.retry(id), [session]);
  const onDismiss = useCallback((id: string) => session.dismiss(id), [session]);

  let body;
  if (roomId === null || room === null) {
    body = <Lobby rooms={state.rooms} problem={state.roomsProblem} ready={state.me !== null && state.signInProblem === null} onCreate={onCreate} />;
  } else if (room.phase === "closed" || room.phase === "unknown") {
    body = <RoomClosed phase={room.phase} name={room.name} onBack={onBack} />;
  } else if (room.locked) {
    body = <SealedLocked name={room.name} onBack={onBack} />;
  } else {
    body = (
      <RoomView
        room={room}
        meId={session.identity.id}
        myName={state.me?.name ?? ""}
        registered={state.account.profile !== null}
        onBack={onBack}
        onCopyLink={onCopyLink}
        onSend={onSend}
        onSendImage={onSendImage}
        images={images}
        onTyping={onTyping}
        onRetry={onRetry}
        onDismiss={onDismiss}
      />
    );
  }

  return (
    <div className={roomId !== null ? "app in-room" : "app"}>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <Header
        conn={state.conn}
        name={state.me?.name ?? null}
        onRename={onRename}
        profile={state.account.profile}
        accountNotice={state.account.notice}
        account={account}
      />
      {state.signInProblem !== null && (
        <p className="banner" role="alert">
          Cannot sign in yet: {state.signInProblem} Retrying…
        </p>
      )}
      {body}
      <div className="visually-hidden" data-testid="live-region" aria-live="polite" aria-atomic="true">
        {room?.announcement.text ?? ""}
      </div>
    </div>
  );
}

/** copyText puts text on the clipboard, with the older way as a fallback for insecure pages. */
async function copyText(text: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const ta = document.createElement("textarea");
    ta.value = text;
    ta.setAttribute("readonly", "");
    ta.className = "offscreen";
    document.body.appendChild(ta);
    ta.select();
    let ok = false;
    try {
      ok = document.execCommand("copy");
    } catch {
      ok = false;
    }
    ta.remove();
    return ok;
  }
}
