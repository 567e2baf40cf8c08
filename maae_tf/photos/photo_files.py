"""The files of an edit: an input photo read (`read_input`), where its edit goes (`output_path`),
and which outputs would replace an input photo (`InputFiles`, `clobbered_inputs`), so that no
input is ever overwritten unless --overwrite."""

from __future__ import annotations

import os

from maae_tf.files import PHOTO_SUFFIXES, read_photo
from maae_tf.photos.align import BadInput


def read_input(path: str):
    """(photo, files.PhotoInfo) of an input photo; BadInput naming it when it does not read."""
    try:
        return read_photo(path)
    except ValueError as e:
        raise BadInput(str(e)) from None


def output_path(photo: str, fmt: str, output: str, n_photos: int, out_format: str = "keep") -> str:
    """Where the edit of `photo` goes: `output` itself when it is a file name with a suffix and
    one photo is edited, else `output/<photo's name>` with the suffix of the photo's format (or
    of `out_format` when it is not "keep")."""
    stem, suffix = os.path.splitext(os.path.basename(photo))
    if out_format != "keep":
        suffix = "." + out_format
    else:
        suffix = PHOTO_SUFFIXES.get(fmt, suffix.lower() or ".png")
    if n_photos == 1 and os.path.splitext(output)[1] and not os.path.isdir(output):
        return output
    return os.path.join(output, stem + suffix)


def photo_format(path: str) -> str | None:
    """PIL's format name of an image file from its header alone, None when it does not open
    (reading it later reports why)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.format or ""
    except Exception:  # any unreadable file: edit_photo's read names the problem
        return None


class InputFiles:
    """The input photos by file identity (device, inode), so an output reached through another
    path (relative, `..`, a symlink, a hard link) is still recognised as an input."""

    def __init__(self, photos):
        self.by_id = {}
        for photo in photos:
            try:
                st = os.stat(photo)
            except OSError:
                continue  # a missing photo: its read reports it
            self.by_id.setdefault((st.st_dev, st.st_ino), photo)

    def replaced_by(self, out: str) -> str | None:
        """The input photo that writing `out` would replace, or None."""
        try:
            st = os.stat(out)
        except OSError:
            return None
        return self.by_id.get((st.st_dev, st.st_ino))


def clobber_message(out: str, photo: str) -> str:
    return (f"{out}: the output would overwrite the input photo {photo}; nothing written "
            f"(choose another -o, or pass --overwrite to replace it)")


def clobbered_inputs(args, inputs: InputFiles) -> list[str]:
    """One message per photo whose output would replace an input photo (none with --overwrite);
    the output is named as `edit_photo` will name it, from the format in the photo's header.
    (--sweep alone writes only contact sheets, whose names depend on the faces found: `edit_photo`
    checks those before writing them.)"""
    if args.overwrite or (args.delta is None and not args.attr):
        return []
    messages = []
    for photo in args.photos:
        fmt = photo_format(photo)
        out = None if fmt is None else output_path(photo, fmt, args.out, len(args.photos), args.format)
        hit = None if out is None else inputs.replaced_by(out)
        if hit is not None:
            messages.append(clobber_message(out, hit))
    return messages
