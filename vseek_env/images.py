"""Images named by data (a visual-prompt PNG, V2P-Bench's ``frame_path``), opened as the env opens files.

A path from data is a literal local file: it must be a regular file (a FIFO would block the reader
forever, a device would stream without end), and the image's pixel count, read from its header, is
checked before anything is decoded (a 15000 x 15000 PNG is a few KB on disk and 675 MB decoded).
Every failure is an :class:`ImageError` naming the file, for the caller to attach to its sample.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> from PIL import Image
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "f.png"
    >>> Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(path)
    >>> read_image(path).shape
    (4, 6, 3)
    >>> read_image(path, max_pixels=10)
    Traceback (most recent call last):
    vseek_env.images.ImageError: ...f.png is 6x4 = 24 pixels; images are limited to 10 (max_pixels)
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from vseek_env.local_files import NotARegularFile, open_regular_file

__all__ = ["ImageError", "MAX_IMAGE_PIXELS", "read_image"]

#: Largest image decoded (width * height), about 8K x 8K: above PIL's own bomb limit, never more.
MAX_IMAGE_PIXELS = 1 << 26


class ImageError(ValueError):
    """An image file that is not a readable, regular, reasonably sized image; names the file."""


def read_image(path: str | os.PathLike, *, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """The RGB pixels (H, W, 3) of the image file at ``path``; :class:`ImageError` otherwise."""
    from PIL import Image

    path = Path(path)
    if "\x00" in str(path):
        raise ImageError(f"{str(path)!r}: a file name cannot contain a NUL byte")
    try:
        fh = open_regular_file(path)
    except NotARegularFile:
        raise ImageError(f"{path}: not a regular file (a FIFO, device or folder); give an image file") from None
    except OSError as exc:
        raise ImageError(f"{path}: cannot open ({exc.strerror or exc})") from None
    with fh:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(fh) as im:  # reads the header only
                    width, height = im.size
                    if width * height > max_pixels:
                        raise ImageError(f"{path} is {width}x{height} = {width * height} pixels; images are limited "
                                         f"to {max_pixels} (max_pixels)")
                    return np.asarray(im.convert("RGB"))
        except ImageError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:  # PIL's header check came first
            raise ImageError(f"{path}: too many pixels to decode ({exc})") from None
        except (OSError, ValueError, SyntaxError) as exc:
            raise ImageError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from None
