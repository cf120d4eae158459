"""Reading a user's array of real numbers (an observation, a batch of them) from a file.

Formats, by suffix: ``.npy`` (NumPy, read with ``allow_pickle=False``: a pickled array is
refused, never loaded), ``.json`` (nested lists of numbers), ``.csv`` (comma separated) and
anything else as whitespace-separated text.  The result is a float32 array with at least
one element; complex numbers, strings, objects, booleans, empty arrays and non-finite
values are refused with a message that names the file and the problem.

Example:
    >>> import tempfile, pathlib, numpy as np
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.json"
    >>> _ = p.write_text("[[0.5, 1.0], [2.0, 3.0]]")
    >>> read_user_array(p).shape
    (2, 2)
    >>> _ = p.write_text('{"x": 1}')
    >>> read_user_array(p)
    Traceback (most recent call last):
    ...
    sbi_astro.errors.DataFormatError: ...x.json holds a JSON object; an observation file holds a list of numbers...
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .errors import DataFormatError, NonFiniteError

_NPY_MAGIC = b"\x93NUMPY"
FORMATS = ".npy, .json, .csv or whitespace-separated text"


def _read_raw(path: Path, what: str) -> np.ndarray:
    suffix = path.suffix.lower()
    if suffix == ".npy":
        with open(path, "rb") as f:
            if f.read(len(_NPY_MAGIC)) != _NPY_MAGIC:
                raise DataFormatError(f"{path} is not a NumPy .npy file (no NPY header); "
                                      f"save the {what} with numpy.save, or use {FORMATS}")
        try:
            return np.load(path, allow_pickle=False)
        except ValueError as err:
            if "pickle" in str(err):
                raise DataFormatError(f"{path} holds an array of Python objects, which is not "
                                      f"read (unsafe); save the {what} as an array of numbers "
                                      "with numpy.save") from None
            raise DataFormatError(f"{path} is a damaged .npy file ({err})") from None
    if suffix == ".json":
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise DataFormatError(f"{path} is not valid JSON ({err})") from None
        if isinstance(doc, bool) or not isinstance(doc, list | int | float):
            kind = {dict: "object", str: "string", bool: "boolean"}.get(type(doc), "null")
            raise DataFormatError(f"{path} holds a JSON {kind}; an {what} file holds a list "
                                  "of numbers, e.g. [0.1, 2.5]")
        bad = _first_non_number(doc)
        if bad is not None:
            raise DataFormatError(f"{path}: the {what} must hold numbers only, found {bad!r}")
        try:
            return np.asarray(doc, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise DataFormatError(f"{path}: the {what} must be a (nested) list of numbers of "
                                  f"equal lengths ({err})") from None
    try:
        return np.loadtxt(path, dtype=np.float64, delimiter="," if suffix == ".csv" else None,
                          ndmin=1)
    except (ValueError, UnicodeDecodeError) as err:
        raise DataFormatError(f"cannot read the {what} {path} as numbers "
                              f"({str(err).splitlines()[0]}); use {FORMATS}") from None


def _first_non_number(doc: object) -> object | None:
    stack = [doc]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, bool) or not isinstance(item, int | float):
            return item
    return None


def read_user_array(path: str | Path, *, what: str = "observation") -> np.ndarray:
    """The float32 array of real numbers in ``path`` (see the module docstring).

    Raises:
        FileNotFoundError: no such file.
        DataFormatError: unreadable, not numbers, complex, or empty.
        NonFiniteError: NaN or infinite values.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} file {path} does not exist")
    if path.is_dir():
        raise DataFormatError(f"{path} is a folder; give the {what} file ({FORMATS})")
    arr = _read_raw(path, what)
    kind = arr.dtype.kind
    if kind == "c":
        raise DataFormatError(f"{path} holds complex numbers; the {what} must be real (take "
                              "the real part or the amplitude yourself)")
    if kind not in "iuf":
        raise DataFormatError(f"{path} holds values of type {arr.dtype} ({arr.dtype.kind!r}); "
                              f"the {what} must be real numbers")
    if arr.size == 0:
        raise DataFormatError(f"{path} holds an empty array of shape {arr.shape}; the {what} "
                              "needs at least one value")
    if not np.isfinite(arr).all():
        raise NonFiniteError(f"{path}: the {what} contains NaN or infinite values "
                             f"({int((~np.isfinite(arr)).sum())} of {arr.size}); mask or "
                             "remove them first")
    return arr.astype(np.float32)
