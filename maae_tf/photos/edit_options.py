"""What `python -m maae_tf.edit` is asked to do (`Options`, its flags) and the edit strengths they
give: checked before the model loads (`check_options`), then matched to the model's attributes
(`resolve_deltas`)."""

from __future__ import annotations

import dataclasses

import numpy as np

from maae_tf import attributes


@dataclasses.dataclass
class Options:
    """What to edit and how: the flags of `python -m maae_tf.edit` (maae_tf/edit.py says each)."""
    photos: list[str]
    model: str | None = None
    server: str | None = None
    rest: str | None = None
    model_name: str | None = None
    timeout: float = 30.0
    delta: float | None = None
    attr: list[str] = dataclasses.field(default_factory=list)
    face: list[int] | None = None
    sweep: str | None = None
    landmarks: int = 68
    min_face: int = 64
    format: str = "keep"
    quality: int = 95
    out: str = "edited"
    overwrite: bool = False
    timings: bool = False


def check_options(options: Options) -> None:
    """The options a command line must give (ValueError naming them): photos, --model, and an edit
    (--delta, --attr NAME=DELTA or --sweep) with finite strengths (`check_strengths`)."""
    if not options.photos:
        raise ValueError("give the photos to edit: python -m maae_tf.edit PHOTO [PHOTO ...] --model=... --delta=3")
    if not options.model:
        raise ValueError("give --model=EXPORT_OR_WORKDIR (or --server=HOST:8500 with --model=NAME)")
    if options.delta is None and not options.attr and not options.sweep:
        raise ValueError("give --delta, --attr NAME=DELTA or --sweep")
    check_strengths(options.delta, options.attr)


def parse_sweep(text: str) -> np.ndarray:
    """"-5:5:11" → 11 strengths from -5 to 5."""
    try:
        lo, hi, n = text.split(":")
        values = np.linspace(float(lo), float(hi), int(n))
    except ValueError:
        raise ValueError(f"--sweep must be LO:HI:N (e.g. -5:5:11), got {text!r}") from None
    if not 1 <= len(values) <= 64 or not np.all(np.isfinite(values)):
        raise ValueError(f"--sweep needs 1 to 64 finite strengths, got {text!r}")
    return values


def split_attr(item: str) -> tuple[str, float]:
    """(name, strength) of one --attr NAME=DELTA; ValueError naming the flag when it is not that."""
    name, sep, value = item.partition("=")
    if not sep:
        raise ValueError(f"--attr must be NAME=DELTA, got {item!r}")
    try:
        return name, float(value)
    except ValueError:
        raise ValueError(f"--attr {item!r}: {value!r} is not a number") from None


def check_strengths(delta, attrs) -> None:
    """The edit strengths given on the command line, checked before the model loads: --delta a
    finite number, each --attr NAME=DELTA with a finite number (the names need the model:
    `resolve_deltas`). ValueError naming the flag."""
    if delta is not None and not np.isfinite(delta):
        raise ValueError(f"--delta must be a finite number, got {delta}")
    for item in attrs:
        if not np.isfinite(split_attr(item)[1]):
            raise ValueError(f"--attr {item!r}: the strength must be a finite number, got {item.partition('=')[2]}")


def resolve_deltas(model_attributes, delta, attrs) -> tuple[np.ndarray, list[int]]:
    """δ per model attribute ([K]) from --delta (the default of every attribute, 0 when absent)
    and --attr NAME=DELTA; also the columns named by --attr (what --sweep varies; all when none)."""
    columns = {a: k for k, a in enumerate(model_attributes)}
    d = np.full(len(model_attributes), 0.0 if delta is None else float(delta), np.float32)
    named = []
    for item in attrs:
        name, value = split_attr(item)
        key = attributes.snake(name)  # raises with the valid names
        if key not in columns:
            raise ValueError(f"--attr {name}: the model edits {', '.join(model_attributes)}, not {key}")
        d[columns[key]] = value
        named.append(columns[key])
    return d, (named or list(range(len(model_attributes))))


def clipping_note(model, delta, sweep, columns) -> str | None:
    """A note naming the attributes asked for beyond the model's trained δ range (which it clips
    to), or None: `delta` [K] or None, `sweep` the --sweep strengths or None."""
    strongest = np.abs(delta) if delta is not None else np.zeros(len(model.attributes))
    if sweep is not None:
        strongest[columns] = np.maximum(strongest[columns], np.abs(sweep).max())
    over = [f"{a} |δ|={v:g} > {m:g}" for a, v, m in zip(model.attributes, strongest, model.delta_max) if v > m]
    return f"note: the model clips δ to its trained range: {', '.join(over)}" if over else None
