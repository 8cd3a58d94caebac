"""Package-wide settings: quick mode, the compute device and the cache folder.

* ``VFMATCH_QUICK=1`` asks every notebook and the main job for the quick
  setting (small population, few epochs): the test suite sets it so the whole
  book runs on a 2-core CPU.
* ``VFMATCH_CACHE`` moves the cache (default ``~/.cache/vfmatch``), where
  simulated populations and extracted features are kept so nothing expensive
  runs twice.
* ``VFMATCH_DEVICE`` overrides the device (``cpu``, ``cuda``, ``cuda:1``).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["quick_mode", "default_device", "cache_dir"]


def quick_mode() -> bool:
    """True when ``VFMATCH_QUICK`` is set to 1/true/yes."""
    return os.environ.get("VFMATCH_QUICK", "").strip().lower() in ("1", "true", "yes", "on")


def default_device(preference: str | None = None) -> str:
    """``"cuda"`` when a GPU is visible (or ``preference``/``VFMATCH_DEVICE`` says so), else ``"cpu"``.

    Raises ValueError if CUDA is asked for but not available."""
    import torch

    pref = (preference or os.environ.get("VFMATCH_DEVICE") or "auto").strip().lower()
    if pref == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if pref.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {pref!r} asked for, but torch sees no CUDA GPU; use --device cpu")
    return pref


def cache_dir(*parts: str) -> Path:
    """A folder under the vfmatch cache, created on demand."""
    root = Path(os.environ.get("VFMATCH_CACHE", Path.home() / ".cache" / "vfmatch"))
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
