"""Image decoding, validation and the model-input conventions shared by every service.

Every service and every training script goes through these functions, so the pixels a model
sees at training time are exactly the pixels it sees when served.

Conventions:
    * Images in memory are ``numpy.ndarray`` of dtype ``uint8``, shape ``(H, W, 3)``, RGB order.
    * Bounding boxes are ``(x1, y1, x2, y2)`` in pixels of the decoded image, x2/y2 exclusive.
    * Model inputs are float32 NCHW tensors holding raw RGB values in ``[0, 255]``; the ONNX
      graphs apply their own normalisation (e.g. EfficientNet-Lite's ``(x - 127) / 128``), so a
      model file is self-describing and the service needs no per-model constants.
"""

from __future__ import annotations

import io
import re
import threading
import warnings

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from designsearch.errors import InvalidImage

#: Largest accepted side of an input image, in pixels.
MAX_SIDE = 8192
#: Smallest accepted side of an input image, in pixels (anything the services shrink an image to keeps it).
MIN_SIDE = 8
#: What :func:`decode_image` reads, as a client is told.
ACCEPTED_FORMATS = "JPEG, PNG, WebP, BMP, TIFF or GIF"
#: Largest accepted number of pixels (width * height) of an input image.
MAX_PIXELS = 40_000_000
#: Largest accepted encoded image, in bytes.
MAX_BYTES = 32 * 1024 * 1024
#: Decoding budget of one image, bytes: the decoded source buffer (width × height × channels ×
#: bytes per sample of its mode) plus the RGB result (width × height × 3), checked from the header
#: before any pixel is decoded. 144 MiB admits a 24-megapixel camera photo (137 MiB).
MAX_DECODED_BYTES = 144 * 1024 * 1024
#: Decompression bombs: above ``BOMB_MIN_BYTES`` of decoding memory, an image may expand at most
#: ``MAX_EXPANSION`` times its encoded size (photos and renderings expand 5-200 times; an 8000 × 5000
#: one-bit PNG of 5 KB would expand 24,000 times into 120 MB).
BOMB_MIN_BYTES = 16 * 1024 * 1024
MAX_EXPANSION = 2000
#: Decodes running at once per process; more wait (at most ``DECODE_WAIT_S``), so the memory of all
#: decodes together is bounded by ``MAX_CONCURRENT_DECODES × MAX_DECODED_BYTES``.
MAX_CONCURRENT_DECODES = 2
DECODE_WAIT_S = 10.0
_DECODES = threading.BoundedSemaphore(MAX_CONCURRENT_DECODES)
#: Bytes per pixel of PIL modes (source buffer while decoding).
_MODE_BYTES = {"1": 1 / 8, "L": 1, "P": 1, "LA": 2, "PA": 2, "RGB": 3, "YCbCr": 3, "LAB": 3, "HSV": 3, "RGBA": 4,
               "RGBX": 4, "CMYK": 4, "I": 4, "F": 4, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}

# decode_image checks the header's size against MAX_SIDE/MAX_PIXELS itself, before any pixel is
# decoded, and reports the size; PIL's own bomb check would refuse first with a vaguer message.
Image.MAX_IMAGE_PIXELS = None


def decode_image(data: bytes, *, max_side: int = MAX_SIDE, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode encoded image bytes (JPEG, PNG, WebP, BMP, TIFF, GIF) into an RGB array.

    The header is checked for size limits before any pixel is decoded, so a 20000x20000 image
    costs nothing to refuse. Truncated files are rejected, not silently padded.

    Args:
        data: the encoded file, as sent by the client.
        max_side: largest accepted width or height in pixels.
        max_pixels: largest accepted width * height.

    Returns:
        ``uint8`` array of shape ``(H, W, 3)``, RGB. EXIF orientation is applied.

    Raises:
        InvalidImage: empty input, not an image, truncated/corrupt data, too large (sides, pixels,
            decoding memory :data:`MAX_DECODED_BYTES`), or a decompression bomb (:data:`MAX_EXPANSION`).
        BackendUnavailable: :data:`MAX_CONCURRENT_DECODES` decodes kept this process busy for
            :data:`DECODE_WAIT_S` (retryable).
    """
    if not data:
        raise InvalidImage("image is empty (0 bytes)", field="image")
    if len(data) > MAX_BYTES:
        raise InvalidImage(f"image is {len(data)} bytes; the limit is {MAX_BYTES}", field="image")
    if not _DECODES.acquire(timeout=DECODE_WAIT_S):
        from designsearch.errors import BackendUnavailable

        raise BackendUnavailable(f"{MAX_CONCURRENT_DECODES} images are being decoded; retry", retry_after_s=1.0)
    try:
        rgb = _decode(data, max_side, max_pixels)
    finally:
        _DECODES.release()
    if min(rgb.shape[:2]) < MIN_SIDE:
        raise InvalidImage(f"image is {rgb.shape[1]}x{rgb.shape[0]} px; at least {MIN_SIDE} px per side needed",
                           field="image")
    return np.ascontiguousarray(rgb)


def decoded_bytes(mode: str, width: int, height: int) -> int:
    """Memory to decode an image of this PIL ``mode`` and size into RGB: the source buffer plus the
    ``uint8`` RGB result, bytes (unknown modes count 4 bytes per pixel)."""
    return int(width * height * (_MODE_BYTES.get(mode, 4) + 3))


def _to_rgb(img: Image.Image) -> np.ndarray:
    """RGB ``uint8`` of any PIL mode; 16- and 32-bit grey (``I;16*``, ``I``, ``F``) are scaled by their
    range, not clipped (a 16-bit PNG would otherwise turn almost white)."""
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        a = np.asarray(img, dtype=np.float64)
        peak = float(a.max(initial=0))
        if img.mode == "F":  # float images have no fixed range: their own maximum is white
            top = max(peak, 1.0)
        else:  # 16-bit, or 32-bit integer holding 8- or 16-bit values
            top = 255.0 if img.mode == "I" and peak <= 255 else 65535.0
        grey = np.clip(a / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def _decode(data: bytes, max_side: int, max_pixels: int) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            if width < 1 or height < 1:
                raise InvalidImage(f"image has no pixels ({width}x{height})", field="image")
            if max(width, height) > max_side or width * height > max_pixels:
                raise InvalidImage(
                    f"image is {width}x{height} px; the limit is {max_side} px per side "
                    f"and {max_pixels} px in all",
                    field="image",
                )
            need = decoded_bytes(img.mode, width, height)
            if need > MAX_DECODED_BYTES:
                raise InvalidImage(
                    f"image is {width}x{height} px in mode {img.mode}: decoding needs {need / 2**20:.0f} MiB; "
                    f"the limit is {MAX_DECODED_BYTES / 2**20:.0f} MiB", field="image")
            if need > BOMB_MIN_BYTES and need > MAX_EXPANSION * len(data):
                raise InvalidImage(
                    f"image of {len(data)} bytes would decode into {need / 2**20:.0f} MiB "
                    f"({need // len(data)} times its size; at most {MAX_EXPANSION}): refused as a decompression bomb",
                    field="image")
            img.load()  # raises OSError on truncated data
            from PIL import ImageOps

            img = ImageOps.exif_transpose(img)
            return _to_rgb(img)
    except InvalidImage:
        raise
    except UnidentifiedImageError as exc:
        raise InvalidImage(f"not a decodable image: {_looks_like(data)}; accepted formats: {ACCEPTED_FORMATS}",
                           field="image") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidImage(f"not a decodable image: {_public(exc)}", field="image") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise InvalidImage(f"corrupt or truncated image: {_public(exc)}", field="image") from exc


#: ``<_io.BytesIO object at 0x7fe8945feca0>`` and the like: a process's internals, never for a client.
_OBJECT_REPR = re.compile(r"\s*<[^<>]* at 0x[0-9a-fA-F]+>")


def _public(exc: Exception) -> str:
    """An exception's text without object reprs (addresses of this process)."""
    return _OBJECT_REPR.sub("", str(exc)).strip() or type(exc).__name__


def _looks_like(data: bytes) -> str:
    """What bytes that are no image seem to be, for the client: from their first bytes only
    (magic numbers, markup, text), never echoing them."""
    head = data[:2048]
    low = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if low.startswith(b"%pdf"):
        return "the bytes look like a PDF document"
    if b"<svg" in low[:2048]:
        return "the bytes look like an SVG drawing (vector graphics are not accepted: export it as PNG)"
    if low.startswith((b"<!doctype html", b"<html")) or b"<html" in low[:512] or b"<body" in low[:1024]:
        return "the bytes look like an HTML page"
    if low.startswith((b"<?xml", b"<")):
        return "the bytes look like XML or markup"
    if head.startswith(b"PK\x03\x04"):
        return "the bytes look like a ZIP archive (or a document made of one)"
    if head.startswith(b"\x00\x00\x00") and head[4:8] == b"ftyp":
        return "the bytes look like a video or HEIC/AVIF picture, which is not accepted"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:  # a multi-byte character cut at the end of the sample is fine
        text = head[: exc.start].decode("utf-8") if exc.start > len(head) - 4 else ""
    if text and sum(c.isprintable() or c in "\t\r\n" for c in text) >= 0.95 * len(text):
        return "the bytes look like text"
    return "the bytes are in no image format read here"


def read_image(path: str) -> np.ndarray:
    """Read an image file from disk into an RGB ``uint8`` array ``(H, W, 3)``.

    Raises:
        InvalidImage: the file is not a decodable image.
        OSError: the file cannot be read.
    """
    with open(path, "rb") as f:
        return decode_image(f.read())


def encode_jpeg(rgb: np.ndarray, quality: int = 85) -> bytes:
    """Encode an RGB ``uint8`` array ``(H, W, 3)`` as JPEG bytes."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV only fails on empty arrays
        raise InvalidImage("could not encode image as JPEG")
    return buf.tobytes()


def encode_png(array: np.ndarray) -> bytes:
    """Encode a ``uint8`` array, ``(H, W)`` grey/mask or ``(H, W, 3)`` RGB, as PNG bytes."""
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", array)
    if not ok:  # pragma: no cover
        raise InvalidImage("could not encode image as PNG")
    return buf.tobytes()


def decode_mask(data: bytes) -> np.ndarray:
    """Decode a mask PNG (:func:`encode_png` of a ``(H, W)`` array) to ``uint8`` ``(H, W)``.

    Raises:
        InvalidImage: the bytes are not a PNG/JPEG image.
    """
    mask = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE) if data else None
    if mask is None:
        raise InvalidImage("mask is not a decodable image")
    return mask


def thumbnail(rgb: np.ndarray, max_side: int = 160, quality: int = 80) -> bytes:
    """A JPEG thumbnail whose longest side is at most ``max_side`` px (never upscaled)."""
    h, w = rgb.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        rgb = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return encode_jpeg(rgb, quality)


def crop_box(rgb: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """Cut ``box = (x1, y1, x2, y2)`` (pixels, x2/y2 exclusive) out of ``rgb``, clipped to the image."""
    h, w = rgb.shape[:2]
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    x1, y1 = max(0, x1), max(0, y1)
    x2, y2 = min(w, x2), min(h, y2)
    if x2 <= x1 or y2 <= y1:
        raise InvalidImage(f"box {box} lies outside the {w}x{h} image")
    return rgb[y1:y2, x1:x2]


def square_box(box: tuple[float, float, float, float], width: int, height: int, margin: float = 0.08) -> tuple[int, int, int, int]:
    """Grow ``box`` into a square around its centre with a relative ``margin``, clipped to the image.

    Args:
        box: ``(x1, y1, x2, y2)`` pixels.
        width, height: image size in pixels.
        margin: fraction of the square side added on each side.

    Returns:
        Integer ``(x1, y1, x2, y2)`` pixels.
    """
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    side = max(x2 - x1, y2 - y1) * (1 + 2 * margin)
    half = side / 2
    return (
        max(0, int(round(cx - half))),
        max(0, int(round(cy - half))),
        min(width, int(round(cx + half))),
        min(height, int(round(cy + half))),
    )


def cutout_on_white(rgb: np.ndarray, box: tuple[int, int, int, int], mask: np.ndarray, *, margin: float = 0.08,
                    size: int = 256, feather_px: float = 1.0) -> np.ndarray:
    """The object of a segmentation alone on white: its box's pixels where ``mask`` is set, white
    elsewhere, centred in a white square with a relative ``margin`` (as :func:`square_box`; never
    clipped at the image border) and resized to ``size`` px.

    What the catalogue's wheels on cars look like as a rendering or studio shot on white (the
    ``cutout`` vector, :data:`designsearch.domain.VIEW_CUTOUT`).

    Args:
        rgb: ``uint8`` ``(H, W, 3)`` image.
        box: ``(x1, y1, x2, y2)`` pixels (x2/y2 exclusive) inside ``rgb``.
        mask: ``uint8`` ``(y2 - y1, x2 - x1)``, 0 outside the object, > 0 inside (the segmenter's mask).
        margin: fraction of the square side added on each side.
        size: output side, px.
        feather_px: Gaussian sigma of the mask edge at the output scale, px (0 = hard edge).

    Returns:
        ``uint8`` ``(size, size, 3)``.

    Raises:
        ValueError: ``mask`` does not have the box's shape, or the box is empty or outside ``rgb``.
    """
    h, w = rgb.shape[:2]
    x1, y1, x2, y2 = (int(v) for v in box)
    if not (0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h):
        raise ValueError(f"box {box} is empty or outside the {w}x{h} image")
    bw, bh = x2 - x1, y2 - y1
    if mask.shape[:2] != (bh, bw):
        raise ValueError(f"mask shape {mask.shape[:2]} differs from the box's {(bh, bw)}")
    scale = size / (max(bw, bh) * (1 + 2 * margin))
    ow, oh = max(1, round(bw * scale)), max(1, round(bh * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    top, left = (size - oh) // 2, (size - ow) // 2
    canvas = np.full((size, size, 3), 255, np.uint8)
    canvas[top:top + oh, left:left + ow] = cv2.resize(rgb[y1:y2, x1:x2], (ow, oh), interpolation=interpolation)
    alpha = np.zeros((size, size), np.float32)
    alpha[top:top + oh, left:left + ow] = cv2.resize((mask > 0).astype(np.float32), (ow, oh),
                                                     interpolation=cv2.INTER_LINEAR)
    if feather_px > 0:
        alpha = cv2.GaussianBlur(alpha, (0, 0), feather_px)
    # alpha * object + (1 - alpha) * white, per pixel (OpenCV's blendLinear: uint8 in and out, rounded)
    return cv2.blendLinear(canvas, np.full_like(canvas, 255), alpha, 1.0 - alpha)


def to_model_input(images: list[np.ndarray], size: int) -> np.ndarray:
    """Resize RGB images to ``size x size`` and stack them as a model input batch.

    The aspect ratio is not kept (wheel crops are square already; whole cars are squeezed, as in
    the usual CARS196 retrieval protocol). Resizing uses area interpolation when shrinking and
    bilinear when enlarging.

    Args:
        images: list of ``uint8`` arrays ``(H, W, 3)``, RGB.
        size: side of the square model input, in pixels.

    Returns:
        ``float32`` array ``(N, 3, size, size)`` with raw RGB values in ``[0, 255]``.
    """
    batch = np.empty((len(images), 3, size, size), dtype=np.float32)
    for i, rgb in enumerate(images):
        h, w = rgb.shape[:2]
        if (h, w) != (size, size):  # an image at the input size already is used as it is
            rgb = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA if min(h, w) > size else cv2.INTER_LINEAR)
        batch[i] = rgb.transpose(2, 0, 1)
    return batch


def edge_map(rgb: np.ndarray, size: int = 224) -> np.ndarray:
    """Canny edge map of an image, drawn as dark lines on white like a sketch, as 3-channel RGB.

    The image is first resized so its longest side is ``size`` px (edge density then does not
    depend on the input resolution), blurred (Gaussian, sigma 1.2), and Canny thresholds are set
    from the median intensity (the common "auto Canny" rule: 0.66 * median, 1.33 * median).
    Reference system: Kang et al., IAAI 2023, index Canny edge maps so sketches match.

    Args:
        rgb: ``uint8`` array ``(H, W, 3)``.
        size: longest side of the output, in pixels.

    Returns:
        ``uint8`` array ``(h, w, 3)`` with longest side ``size``: 0 on edges, 255 elsewhere.
    """
    h, w = rgb.shape[:2]
    scale = size / max(h, w)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    small = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=interp)
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    grey = cv2.GaussianBlur(grey, (0, 0), 1.2)
    median = float(np.median(grey))
    lo, hi = int(max(0, 0.66 * median)), int(min(255, 1.33 * median))
    edges = cv2.Canny(grey, lo, max(hi, lo + 1))
    lines = 255 - edges
    return np.repeat(lines[:, :, None], 3, axis=2)


#: :func:`is_sketch_like`'s rule: a pixel is grey below this HSV saturation (0-255) ...
SKETCH_MAX_SATURATION = 30
#: ... at least this fraction of the pixels is grey ...
SKETCH_MIN_LOW_SATURATION = 0.95
#: ... and at least this fraction is bright (HSV value above 200).
SKETCH_MIN_BRIGHT = 0.6


def is_sketch_like(rgb: np.ndarray, max_saturation: int = SKETCH_MAX_SATURATION,
                   min_low_saturation: float = SKETCH_MIN_LOW_SATURATION,
                   min_bright: float = SKETCH_MIN_BRIGHT) -> bool:
    """Heuristic: ``True`` when an image looks like a line drawing (mostly white, nearly grey).

    Used when a client leaves the query domain unspecified. A sketch has low saturation and most
    pixels near white; photos and renderings rarely do.

    Args:
        rgb: ``uint8`` array ``(H, W, 3)``.
        max_saturation: HSV saturation (0-255) below which a pixel counts as grey.
        min_low_saturation: least fraction of grey pixels.
        min_bright: least fraction of bright pixels (HSV value > 200).
    """
    small = cv2.resize(rgb, (128, 128), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    low_saturation = float(np.mean(hsv[:, :, 1] < max_saturation))
    bright = float(np.mean(hsv[:, :, 2] > 200))
    return low_saturation > min_low_saturation and bright > min_bright
