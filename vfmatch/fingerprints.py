"""Code fingerprints of encoders: which code do an encoder's features depend on?

Cached features are keyed on :meth:`vfmatch.features.encoders.Encoder.fingerprint`,
which holds the configuration, the weights and :func:`traced_code_fingerprint`
of the encoder's class. That is a hash of the source of

* the class and its bases,
* their methods, and every function or class those methods refer to by a
  global name (``log_mel_batch``, ``voice_statistics``, ``images_to_tensor``,
  ``AlignFaces``, ...), followed transitively,

for all code that is not the standard library's or an installed package's:
vfmatch itself and the user's own code (a notebook cell, a script, a test).
So a student who edits ``voice_statistics`` in ``audio.py``, or an encoder in
a notebook cell and runs the cell again, gets freshly computed features. vfmatch
code is hashed by :func:`vfmatch.utils.code_fingerprint`; user code by the
source of its functions (which Jupyter keeps for every cell).

Only names looked up directly are followed (``from .audio import voice_statistics``
then ``voice_statistics(...)``), not attributes of modules (``audio.voice_statistics``),
which vfmatch does not use inside encoders. This module sits at the bottom of the flow beside :mod:`vfmatch.utils`, so the
encoders (chapters 02, 03) and the calculators (chapter 04) key their caches the
same way.
"""

from __future__ import annotations

import hashlib
import inspect
import site
import sys
import sysconfig
import weakref

from .utils import code_fingerprint

__all__ = ["traced_code_fingerprint"]

# Where the standard library and installed packages live: code there is not followed.
_LIBRARY_DIRS = tuple(
    {sysconfig.get_path(p) for p in ("stdlib", "platstdlib", "purelib", "platlib")} | {site.getusersitepackages()}
)

# The hash of each class and function met, by object: inspect.getsource is slow
# (it parses the whole module), and an edited notebook cell or a reloaded module
# makes new objects, hence new keys.
_SOURCE_HASHES: "weakref.WeakKeyDictionary[object, str]" = weakref.WeakKeyDictionary()


def traced_code_fingerprint(cls_or_function) -> str:
    """A 16-hex-digit hash of the code ``cls_or_function`` runs (see the module docstring)."""
    h = hashlib.sha1()
    for obj in sorted(_traced_code(cls_or_function), key=lambda o: (o.__module__, o.__qualname__)):
        if obj not in _SOURCE_HASHES:
            _SOURCE_HASHES[obj] = _source_hash(obj)
        h.update(f"{obj.__module__}.{obj.__qualname__}:{_SOURCE_HASHES[obj]}".encode())
    return h.hexdigest()[:16]


def _source_hash(obj) -> str:
    if obj.__module__.startswith("vfmatch"):
        return code_fingerprint(obj)
    if not inspect.isfunction(obj):
        return ""  # a class outside vfmatch counts through its methods, which are traced too
    try:
        return hashlib.sha1(inspect.getsource(obj).encode()).hexdigest()
    except (OSError, TypeError):  # no source file: the compiled code stands in
        return hashlib.sha1(obj.__code__.co_code + repr(obj.__code__.co_consts).encode()).hexdigest()


def _is_ours(obj) -> bool:
    """Is ``obj`` a class or function of vfmatch or of the user, not of the standard library or a package?"""
    if not (inspect.isclass(obj) or inspect.isfunction(obj)):
        return False
    module = getattr(obj, "__module__", None) or ""
    if module.startswith("vfmatch") or module == "__main__":
        return True
    if module in sys.builtin_module_names:
        return False
    file = getattr(sys.modules.get(module), "__file__", None)
    return file is None or not str(file).startswith(_LIBRARY_DIRS)


def _traced_code(start) -> list:
    """``start``, its bases, their methods, and what those refer to by global name, transitively (ours only)."""
    found: dict[int, object] = {}
    todo = [start]
    while todo:
        obj = todo.pop()
        if id(obj) in found:
            continue
        found[id(obj)] = obj
        if inspect.isclass(obj):
            todo += [b for b in obj.__mro__[1:] if _is_ours(b)]
        for fn in _functions_of(obj):
            todo.append(fn)
            todo += [ref for ref in (fn.__globals__.get(n) for n in _global_names(fn.__code__)) if _is_ours(ref)]
    return list(found.values())


def _functions_of(obj) -> list:
    """A function itself; a class's own methods, property getters and static/class methods, unwrapped
    (``@torch.no_grad()`` and other decorators keep the original in ``__wrapped__``)."""
    if inspect.isfunction(obj):
        return [obj]
    out = []
    for value in vars(obj).values():
        for f in (getattr(value, "__func__", None), getattr(value, "fget", None), value):
            if callable(f) and inspect.isfunction(inspect.unwrap(f)):
                out.append(inspect.unwrap(f))
                break
    return out


def _global_names(code) -> set[str]:
    """Names a code object (and the functions, lambdas and comprehensions inside it) may look up."""
    names = set(code.co_names)
    for const in code.co_consts:
        if inspect.iscode(const):
            names |= _global_names(const)
    return names
