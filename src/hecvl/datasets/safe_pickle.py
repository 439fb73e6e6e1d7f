"""A restricted unpickler for the MultiBypass140 split pickles: data only, never code.

`pickle.load` runs whatever callable a file names (`os.system`, `subprocess.Popen`, ...), so an
untrusted pickle is a program, not data. This unpickler refuses every global except:
- `set` / `frozenset` (protocol 2 and 3 pickles build sets through them);
- numpy *scalars* of plain kinds (bool, int, uint, float, unicode). The CAMMA label pickles (the
  Cholec80 ones of the same group, and likely these) store per-frame values as numpy scalars, which
  pickle as `numpy.core.multiarray.scalar(numpy.dtype(code), raw_bytes)`. We never import or call
  numpy for them: `dtype` becomes an inert record of the type code and byte order, and `scalar`
  decodes the raw bytes with `struct` into a Python bool/int/float/str. Any other dtype is refused;
  so are numpy *arrays* (`_reconstruct`/`ndarray`), whose state can name arbitrary object dtypes;
- `_codecs.encode(text, "latin1")`, which protocol 2 uses to carry those raw bytes, and nothing else
  of `_codecs`.
Everything else (containers, str, bytes, numbers, bool, None) needs no global at all.
"""

from __future__ import annotations

import io
import pickle
import struct
from pathlib import Path
from typing import Any

from hecvl.errors import HecvlError

_NUMPY_MULTIARRAY = {"numpy.core.multiarray", "numpy._core.multiarray"}
_STRUCT_CODES = {("i", 1): "b", ("i", 2): "h", ("i", 4): "i", ("i", 8): "q",
                 ("u", 1): "B", ("u", 2): "H", ("u", 4): "I", ("u", 8): "Q",
                 ("f", 2): "e", ("f", 4): "f", ("f", 8): "d", ("b", 1): "?"}  # fmt: skip


class _InertDtype:
    """What `numpy.dtype(code, align, copy)` turns into here: the code and byte order, nothing more."""

    def __init__(self, code: object, *_args: object) -> None:
        if not isinstance(code, str) or len(code) < 2 or code[0] not in "biufU" or not code[1:].isdigit():
            raise pickle.UnpicklingError(f"numpy dtype {code!r} is not a plain bool/int/float/str type")
        self.kind, self.size = code[0], int(code[1:])
        self.byteorder = "<"

    def __setstate__(self, state: object) -> None:
        # numpy's dtype state: (version, byteorder, subarray, names, fields, elsize, alignment, flags)
        if not isinstance(state, tuple) or len(state) < 2 or state[1] not in ("<", ">", "|", "="):
            raise pickle.UnpicklingError("malformed numpy dtype state")
        if any(part is not None for part in state[2:5]):
            raise pickle.UnpicklingError("structured numpy dtypes are not admitted")
        self.byteorder = {"|": "<", "=": "<"}.get(state[1], state[1])


def _numpy_scalar(dtype: object, raw: object) -> bool | int | float | str:
    """Decode a pickled numpy scalar's raw bytes into the equivalent Python value."""
    if not isinstance(dtype, _InertDtype) or not isinstance(raw, bytes):
        raise pickle.UnpicklingError("malformed numpy scalar")
    if dtype.kind == "U":
        encoding = "utf-32-le" if dtype.byteorder == "<" else "utf-32-be"
        return raw.decode(encoding).rstrip("\x00")
    code = _STRUCT_CODES.get((dtype.kind, dtype.size))
    if code is None or len(raw) != dtype.size:
        raise pickle.UnpicklingError(
            f"numpy scalar of kind {dtype.kind!r} and size {dtype.size} not admitted"
        )
    return struct.unpack(dtype.byteorder + code, raw)[0]


def _latin1_encode(text: object, encoding: object = "latin1") -> bytes:
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("only _codecs.encode(text, 'latin1') is admitted")
    return text.encode("latin1")


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that admits plain data only (see the module docstring for the exact list)."""

    def find_class(self, module: str, name: str) -> Any:
        if module in ("builtins", "__builtin__") and name in ("set", "frozenset"):
            return set if name == "set" else frozenset
        if module == "numpy" and name == "dtype":
            return _InertDtype
        if module in _NUMPY_MULTIARRAY and name == "scalar":
            return _numpy_scalar
        if module == "_codecs" and name == "encode":
            return _latin1_encode
        raise pickle.UnpicklingError(f"refused the global {module}.{name}")


def loads_restricted(data: bytes) -> Any:
    """Unpickle bytes with `RestrictedUnpickler`; raises pickle.UnpicklingError on anything refused."""
    return RestrictedUnpickler(io.BytesIO(data)).load()


def load_restricted(path: str | Path) -> Any:
    """Unpickle a file that may come from anywhere: plain data comes back, code is never run.

    A refused or damaged pickle is a HecvlError naming the file and the reason.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise HecvlError(f"cannot read the pickle: {exc.strerror}", path) from None
    try:
        return loads_restricted(data)
    except pickle.UnpicklingError as exc:
        raise HecvlError(
            f"unsafe or unreadable pickle, not loaded ({exc}); only plain containers, strings and "
            "numbers are admitted",
            path,
        ) from None
    except (EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError, struct.error) as exc:
        raise HecvlError(f"damaged pickle ({type(exc).__name__}: {exc})", path) from None
