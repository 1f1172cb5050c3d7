// Images in the conversation: a thumbnail laid out from the entry's
// dimensions before its bytes arrive, and the full image in a dialog.
import { useEffect, useRef, useState } from "react";

import { formatBytes, uploadProblem } from "../api";
import { imageUrl, thumbBox } from "../image";
import type { ImageInfo } from "../types";
import { CloseIcon, ImageIcon, WarningIcon } from "./Icons";

/** Where images come from (with the room's token); components never fetch themselves. */
export interface ImageSource {
  /** The image's bytes. */
  load: (uploadId: string, signal: AbortSignal) => Promise<Blob>;
  /** A signed link to the image, for a new tab: a data: URL cannot be opened as a page. */
  link: (uploadId: string) => Promise<string>;
}

/** What the lightbox shows. */
export interface OpenImage {
  uploadId: string;
  url: string;
  alt: string;
  width: number;
  height: number;
}

type Loaded = { state: "waiting" | "loading" } | { state: "loaded"; url: string } | { state: "error"; message: string };

/**
 * useImage loads an image once its element comes near the screen, and lets
 * go of it when the element goes: a long room does not hold every image in
 * memory, nor fetch the ones nobody scrolls to.
 */
function useImage(uploadId: string, load: ImageSource["load"], target: React.RefObject<HTMLElement | null>): [Loaded, () => void] {
  const [loaded, setLoaded] = useState<Loaded>({ state: "waiting" });
  const [attempt, setAttempt] = useState(0);
  useEffect(() => {
    const el = target.current;
    if (el === null || uploadId === "") return;
    const abort = new AbortController();
    let started = false;
    const start = () => {
      if (started) return;
      started = true;
      setLoaded({ state: "loading" });
      load(uploadId, abort.signal)
        .then(imageUrl)
        .then(
          (url) => !abort.signal.aborted && setLoaded({ state: "loaded", url }),
          (err) => !abort.signal.aborted && setLoaded({ state: "error", message: uploadProblem(err) }),
        );
    };
    let io: IntersectionObserver | null = null;
    if (typeof IntersectionObserver === "undefined") start();
    else {
      io = new IntersectionObserver((es) => es.some((e) => e.isIntersecting) && start(), { rootMargin: "600px 0px" });
      io.observe(el);
    }
    return () => {
      io?.disconnect();
      abort.abort();
      setLoaded({ state: "waiting" });
    };
  }, [uploadId, load, target, attempt]);
  return [loaded, () => setAttempt((n) => n + 1)];
}

interface ThumbProps {
  uploadId: string;
  info: ImageInfo | undefined;
  /** The caption or, without one, words for what it is: the image's alternative text. */
  alt: string;
  load: ImageSource["load"];
  onOpen: (img: OpenImage) => void;
}

/** ImageThumb is an image message's picture: the real aspect ratio at once, the bytes when near the screen. */
export function ImageThumb({ uploadId, info, alt, load, onOpen }: ThumbProps) {
  const box = useRef<HTMLDivElement>(null);
  const [loaded, retry] = useImage(uploadId, load, box);
  const size = thumbBox(info?.width ?? 0, info?.height ?? 0);
  const dims = info !== undefined && info.width > 0 ? `${info.width}×${info.height}` : "";
  // Set through the CSSOM (the policy allows no style attributes in markup):
  // the box has the image's shape before a byte of it has arrived.
  const shape = { width: `${size.width}px`, aspectRatio: `${size.width} / ${size.height}` };
  return (
    <div
      ref={box}
      className={`thumb${size.cropped ? " cropped" : ""}`}
      data-testid="entry-image"
      data-state={loaded.state}
      data-width={info?.width ?? ""}
      data-height={info?.height ?? ""}
      style={shape}
    >
      {loaded.state === "loaded" ? (
        <button
          type="button"
          className="thumb-open"
          data-testid="entry-image-open"
          aria-label={`Open image${dims ? ` (${dims})` : ""}: ${alt}`}
          onClick={() => onOpen({ uploadId, url: loaded.url, alt, width: info?.width ?? 0, height: info?.height ?? 0 })}
        >
          <img src={loaded.url} alt={alt} width={size.width} height={size.height} decoding="async" />
        </button>
      ) : loaded.state === "error" ? (
        <div className="thumb-placeholder thumb-error" role="note">
          <WarningIcon size={18} />
          <span>{loaded.message}</span>
          <button type="button" className="btn btn-small btn-ghost" onClick={retry}>
            Try again
          </button>
        </div>
      ) : (
        <div className="thumb-placeholder" aria-label="Loading image" role="img">
          <ImageIcon size={22} />
          {info !== undefined && <span className="thumb-size">{formatBytes(info.size)}</span>}
        </div>
      )}
    </div>
  );
}

/**
 * Lightbox shows one image at full size in a modal dialog: Esc, the close
 * button or a click beside the image closes it, and focus goes back to the
 * thumbnail that opened it.
 */
export function Lightbox({ image, link, onClose }: { image: OpenImage | null; link: ImageSource["link"]; onClose: () => void }) {
  const dialog = useRef<HTMLDialogElement>(null);
  const opener = useRef<Element | null>(null);
  const [original, setOriginal] = useState<{ id: string; url: string } | null>(null);
  const uploadId = image?.uploadId ?? "";
  useEffect(() => {
    // Asked for as the dialog opens: a new tab opened after waiting for
    // the answer would be taken for a pop-up and blocked.
    if (uploadId === "") return;
    let live = true;
    link(uploadId).then(
      (url) => live && setOriginal({ id: uploadId, url }),
      () => {}, // no link, no button: the image is on screen anyway
    );
    return () => {
      live = false;
    };
  }, [uploadId, link]);
  useEffect(() => {
    const d = dialog.current;
    if (d === null) return;
    if (image !== null && !d.open) {
      opener.current = document.activeElement;
      d.showModal();
    } else if (image === null && d.open) d.close();
  }, [image]);
  return (
    <dialog
      ref={dialog}
      className="lightbox"
      data-testid="lightbox"
      aria-label={image?.alt || "Image"}
      onClose={() => {
        onClose();
        if (opener.current instanceof HTMLElement) opener.current.focus();
      }}
      onClick={(e) => {
        // The image and the link do their own thing; anywhere else closes.
        if (!(e.target instanceof Element && e.target.closest("img, a") !== null)) dialog.current?.close();
      }}
    >
      {image !== null && (
        <>
          <button type="button" className="btn lightbox-close" data-testid="lightbox-close" aria-label="Close" autoFocus>
            <CloseIcon size={20} />
          </button>
          <figure className="lightbox-figure">
            <img src={image.url} alt={image.alt} width={image.width || undefined} height={image.height || undefined} />
            {image.alt !== "" && <figcaption>{image.alt}</figcaption>}
            {original !== null && original.id === image.uploadId && (
              <a className="btn btn-small lightbox-original" data-testid="lightbox-original" href={original.url} target="_blank" rel="noopener noreferrer">
                Open in a new tab
              </a>
            )}
          </figure>
        </>
      )}
    </dialog>
  );
}
