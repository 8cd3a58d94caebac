"""Small helpers every stage shares: progress bars, thread limits, one-hot codes,
JSON conversion and code fingerprints for cache keys.

This module sits at the bottom of the data flow (beside :mod:`vfmatch.config`
and :mod:`vfmatch.metaproperties`): it imports nothing else from vfmatch, so
any stage may use it. Each job here has this one implementation.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np

__all__ = ["progress", "limit_threads", "parallel_map", "n_jobs", "batches", "one_hot", "to_jsonable", "code_fingerprint", "CODE_VERSION"]

# One code version for every cache (simulated populations, features, extracted
# tables). Bump it when a change alters cached results in a way that the code
# fingerprints below cannot see (a library upgrade, a data-format change).
CODE_VERSION = "4"


def progress(iterable, enabled: bool, desc: str, total: int | None = None):
    """A tqdm progress bar over ``iterable`` when ``enabled`` (``tqdm.auto``: a widget in Jupyter)."""
    if not enabled:
        return iterable
    from tqdm.auto import tqdm  # deferred: only long work shows a bar

    return tqdm(iterable, desc=desc, total=total, leave=False)


def batches(n: int, size: int) -> list[slice]:
    """Slices ``[0:size], [size:2*size], ...`` covering ``range(n)``."""
    return [slice(s, min(s + size, n)) for s in range(0, n, max(1, int(size)))]


class limit_threads:
    """Run a block with ``n`` torch and BLAS threads (default: ``VFMATCH_THREADS``, else 1).

    Encoders and calculators do many small operations. On a small CPU a second
    thread gains little there, and while another process holds the other core
    its spinning can make each operation five to ten times slower, so vfmatch
    uses one thread unless told otherwise (``VFMATCH_THREADS=4``)."""

    _controller = None  # threadpoolctl's view of the loaded BLAS libraries, found once

    def __init__(self, n: int | None = None):
        self.n = int(n or os.environ.get("VFMATCH_THREADS", 1))

    def __enter__(self):
        import torch  # deferred: utils stays importable without torch loaded
        from threadpoolctl import ThreadpoolController

        if limit_threads._controller is None:
            limit_threads._controller = ThreadpoolController()
        self._torch = torch.get_num_threads()
        torch.set_num_threads(self.n)
        self._blas = limit_threads._controller.limit(limits=self.n)
        return self

    def __exit__(self, *exc):
        import torch

        self._blas.restore_original_limits()
        torch.set_num_threads(self._torch)
        return False


def n_jobs() -> int:
    """Worker processes for :func:`parallel_map`: ``VFMATCH_JOBS``, else the CPU count."""
    value = os.environ.get("VFMATCH_JOBS")
    try:
        jobs = int(value) if value else (os.cpu_count() or 1)
    except ValueError:
        raise ValueError(f"VFMATCH_JOBS must be a whole number of worker processes, got {value!r}") from None
    return max(1, jobs)


def _one_thread_call(fn, item):
    with limit_threads(1):
        return fn(item)


def parallel_map(fn, items, *, show_progress: bool = False, desc: str = "", min_items: int = 64) -> list:
    """``[fn(x) for x in items]``, spread over :func:`n_jobs` worker processes, in order.

    For independent per-item work that is pure Python and small tensor operations
    (a clip's pitch track, a simulated person's voice): one thread gains nothing
    there, but a second core does. Each call runs on one thread (:class:`limit_threads`),
    in the workers and when run here, so the results are the same whatever the number
    of workers. ``fn`` must be a module-level function (the workers import it);
    fewer than ``min_items`` items, or ``VFMATCH_JOBS=1``, run in this process.
    """
    items = list(items)
    jobs = min(n_jobs(), len(items))
    if jobs <= 1 or len(items) < min_items:
        return [_one_thread_call(fn, x) for x in progress(items, show_progress, desc, len(items))]
    from joblib import Parallel, delayed  # deferred: only long work starts workers

    # joblib's workers restart themselves when their memory has grown by 300 MB (a trained
    # network's buffers do that); the job is run by the new worker, so the warning is noise.
    warnings.filterwarnings("ignore", message="A worker stopped while some jobs were given", category=UserWarning)

    calls = Parallel(n_jobs=jobs, return_as="generator", batch_size="auto")(delayed(_one_thread_call)(fn, x) for x in items)
    return list(progress(calls, show_progress, desc, len(items)))


def one_hot(index, n_values: int) -> np.ndarray:
    """``(n,) int`` value indices -> ``(n, n_values) float32`` one-hot rows.

    An index of -1 (unknown) gives a uniform row: knowing nothing, every value is
    equally likely. Raises ValueError for an index outside ``[-1, n_values)``."""
    idx = np.asarray(index, dtype=np.int64).reshape(-1)
    if n_values < 1:
        raise ValueError(f"n_values must be >= 1, got {n_values}")
    bad = (idx < -1) | (idx >= n_values)
    if bad.any():
        raise ValueError(f"value index {int(idx[bad][0])} is outside [-1, {n_values})")
    out = np.zeros((len(idx), n_values), dtype=np.float32)
    known = idx >= 0
    out[np.flatnonzero(known), idx[known]] = 1.0
    out[~known] = 1.0 / n_values
    return out


def to_jsonable(obj):
    """numpy scalars/arrays, frames, paths and sets to plain JSON values (NaN/inf -> None).

    float32 keeps its short decimal form (1.2, not 1.2000000476837158)."""
    import pandas as pd  # deferred: pandas is heavy and only frames need it

    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, pd.DataFrame):
        return to_jsonable(obj.to_dict(orient="records"))
    if isinstance(obj, np.ndarray):
        if obj.dtype == np.float32:  # element by element, so each keeps its float32 short form
            return [to_jsonable(x) for x in obj] if obj.ndim else to_jsonable(obj[()])
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.float32):
        return None if not np.isfinite(obj) else float(str(obj))
    if isinstance(obj, (float, np.floating)):
        return None if not np.isfinite(obj) else float(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def code_fingerprint(*objects) -> str:
    """A short hash of the source code of ``objects`` (classes or functions) and of
    every vfmatch class they inherit from, plus :data:`CODE_VERSION`.

    Cache keys include it, so a student who edits an encoder's or a calculator's
    code gets freshly computed features, never stale ones."""
    h = hashlib.sha1(CODE_VERSION.encode())
    seen = set()
    for obj in objects:
        cls = obj if inspect.isclass(obj) or inspect.isfunction(obj) else type(obj)
        chain = cls.__mro__ if inspect.isclass(cls) else (cls,)
        for c in chain:
            mod = getattr(c, "__module__", "") or ""
            if not mod.startswith("vfmatch") or c in seen:
                continue
            seen.add(c)
            try:
                src = inspect.getsource(c)
            except (OSError, TypeError):  # defined interactively: its name is all we have
                src = f"{mod}.{c.__qualname__}"
            h.update(src.encode())
    return h.hexdigest()[:16]
