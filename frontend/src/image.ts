// Laying out images before their bytes arrive, and showing the bytes.

/** The box a thumbnail takes in the conversation, in CSS pixels. */
export interface ThumbBox {
  width: number;
  height: number;
  /** The image is cut to fit: it is so long and thin that at full ratio it would be a sliver. */
  cropped: boolean;
}

/** The largest thumbnail, either side: big enough to see, small enough to scroll past. */
export const THUMB_MAX = 320;
/** The shortest side of a thumbnail: a panorama still makes something to click on. */
export const THUMB_MIN_SIDE = 48;

/**
 * thumbBox fits an image of width×height into a max×max box, keeping its
 * aspect ratio and never enlarging it, so the conversation keeps its place
 * while the image loads. A side under THUMB_MIN_SIDE is raised to it (the
 * picture is then cropped); dimensions that are missing or not positive
 * (an older entry, a broken upload) give a 4:3 box.
 */
export function thumbBox(width: number, height: number, max = THUMB_MAX, minSide = THUMB_MIN_SIDE): ThumbBox {
  if (!(Number.isFinite(width) && Number.isFinite(height) && width > 0 && height > 0)) {
    return { width: max, height: Math.round((max * 3) / 4), cropped: false };
  }
  const scale = Math.min(1, max / width, max / height);
  let w = Math.max(1, Math.round(width * scale));
  let h = Math.max(1, Math.round(height * scale));
  let cropped = false;
  // A tiny image (an icon) is shown at its size; only a thin one is cropped.
  if (w < minSide && width > w) {
    w = Math.min(minSide, width);
    cropped = true;
  }
  if (h < minSide && height > h) {
    h = Math.min(minSide, height);
    cropped = true;
  }
  return { width: w, height: h, cropped };
}

/**
 * imageUrl makes a URL an <img> can show blob with. The page's
 * Content-Security-Policy allows images from 'self' and data: only (not
 * blob:), and the bytes come with a bearer token, which an <img> cannot
 * send: a data: URL is what is left. Nothing to revoke: the string goes
 * with the last element that holds it.
 */
export function imageUrl(blob: Blob): Promise<string> {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(String(r.result));
    r.onerror = () => reject(r.error ?? new Error("The image could not be read."));
    r.readAsDataURL(blob);
  });
}
