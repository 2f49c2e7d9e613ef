"""Lazy matplotlib: one backend rule and one install hint for every figure (private)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Union

__all__ = ["pyplot", "save"]


def _has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.name == "nt")


def pyplot():
    """Import and return ``matplotlib.pyplot``, switching to the non-interactive Agg backend
    when there is no display; a clear ImportError naming the extra when matplotlib is missing."""
    try:
        import matplotlib

        if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg", "ps") and not _has_display():
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("torchtopo's figures need matplotlib: pip install 'torchtopo[examples]'") from e
    return plt


def save(fig: Any, path: Union[str, Path], *, dpi: int = 120) -> Path:
    """Write ``fig`` to ``path`` (parent folders created, tight bounding box) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    pyplot().close(fig)
    return path
