// Images in the conversation: a thumbnail laid out from the entry's
// dimensions before its bytes arrive, and the full image in a dialog.
import { useEffect, useRef, useState } from "react";

import { formatBytes, uploadProblem } from "../api";
import { imageUrl, thumbBox } from "../image";
import type { ImageInfo } from "../types";
import { CloseIcon, ImageIcon, WarningIcon } from "./Icons";

/** Reads an image's bytes (with the room's token); components never fetch themselves. */
export type LoadImage = (uploadId: string, signal: AbortSignal) => Promise<Blob>;

/** What the lightbox shows. */
export interface OpenImage {
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
function useImage(uploadId: string, load: LoadImage, target: React.RefObject<HTMLElement | null>): [Loaded, () => void] {
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
  load: LoadImage;
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
          onClick={() => onOpen({ url: loaded.url, alt, width: info?.width ?? 0, height: info?.height ?? 0 })}
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
export function Lightbox({ image, onClose }: { image: OpenImage | null; onClose: () => void }) {
  const dialog = useRef<HTMLDialogElement>(null);
  const opener = useRef<Element | null>(null);
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
        // The image itself does nothing; anywhere else closes.
        if (!(e.target instanceof HTMLImageElement)) dialog.current?.close();
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
          </figure>
        </>
      )}
    </dialog>
  );
}
