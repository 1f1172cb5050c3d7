import { useCallback, useSyncExternalStore, type MouseEvent } from "react";

/** Route is what the address bar asks for: the lobby or one room. */
export type Route = { page: "lobby" } | { page: "room"; id: string };

/** parseRoute reads a path: /r/<id> is a room, anything else the lobby. */
export function parseRoute(pathname: string): Route {
  const m = /^\/r\/([^/]+)\/?$/.exec(pathname);
  if (m === null) return { page: "lobby" };
  let id: string;
  try {
    id = decodeURIComponent(m[1]!);
  } catch {
    id = m[1]!;
  }
  return { page: "room", id };
}

/** roomPath is the path of a room's page, the link people share. */
export function roomPath(id: string): string {
  return "/r/" + encodeURIComponent(id);
}

const changed = "natter:navigate";

function subscribe(onChange: () => void): () => void {
  window.addEventListener("popstate", onChange);
  window.addEventListener(changed, onChange);
  return () => {
    window.removeEventListener("popstate", onChange);
    window.removeEventListener(changed, onChange);
  };
}

function currentPath(): string {
  return window.location.pathname;
}

/** navigate moves to path with the History API, without a page load. */
export function navigate(path: string, replace = false): void {
  if (path === window.location.pathname) return;
  if (replace) window.history.replaceState(null, "", path);
  else window.history.pushState(null, "", path);
  window.dispatchEvent(new Event(changed));
}

/** useRoute is the current route, kept current with the address bar. */
export function useRoute(): Route {
  const path = useSyncExternalStore(subscribe, currentPath);
  return parseRouteCached(path);
}

let lastPath = "";
let lastRoute: Route = { page: "lobby" };
function parseRouteCached(path: string): Route {
  if (path !== lastPath) {
    lastPath = path;
    lastRoute = parseRoute(path);
  }
  return lastRoute;
}

/** useLinkHandler makes an <a href> navigate in the app unless a modifier asks for a new tab. */
export function useLinkHandler(path: string): (e: MouseEvent) => void {
  return useCallback(
    (e: MouseEvent) => {
      if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
      e.preventDefault();
      navigate(path);
    },
    [path],
  );
}
