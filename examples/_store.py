"""What the examples write to disk, written so that nothing is lost: atomic files (temp + rename),
a lock on the output folder, and a checkpoint cache that detects unreadable files and retrains.
"""
from __future__ import annotations

import atexit
import json
import os
import pickle
import tempfile
import warnings
import zipfile
from typing import Any, Callable, Dict, Optional

import torch
from torch import nn

__all__ = ["atomic_write", "atomic_save", "OutLock", "Checkpoints"]

LOCK_NAME = ".lock"


def _atomic(path: str, write: Callable[[str], None]) -> None:
    """Write ``path`` through a temporary file in the same folder, then ``os.replace`` it: a
    reader (or a crash) sees the old file or the new one, never half of one."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would make the result private
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write(path: str, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""

    def w(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())

    _atomic(path, w)


def atomic_save(obj: Any, path: str) -> None:
    """``torch.save(obj, path)`` atomically."""
    _atomic(path, lambda tmp: torch.save(obj, tmp))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class OutLock:
    """A lock file ``out/.lock`` holding the PID of the run writing into ``out``.

    A second run into the same folder while the first is alive stops with a message naming the
    PID; a lock left by a process that no longer exists (killed, crashed) is taken over.  The
    lock is released at exit (or by :meth:`release`); a process re-acquiring its own lock (a
    test calling ``main`` twice) is fine."""

    def __init__(self, out: str) -> None:
        self.path = os.path.join(out, LOCK_NAME)
        self.held = False

    def acquire(self) -> "OutLock":
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        me = os.getpid()
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    with open(self.path) as fh:
                        pid = int(fh.read().strip() or -1)
                except (OSError, ValueError):
                    pid = -1
                if pid == me:
                    self.held = True
                    return self
                if pid > 0 and _alive(pid):
                    raise SystemExit(
                        f"another run (PID {pid}) is writing into {os.path.dirname(self.path)!r}: wait for it "
                        f"to finish or pass a different --out (if PID {pid} is not a run of this script, "
                        f"delete {self.path})")
                warnings.warn(f"taking over the stale lock {self.path} (PID {pid} no longer runs)", stacklevel=2)
                try:
                    os.remove(self.path)
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(str(me))
            self.held = True
            atexit.register(self.release)
            return self
        raise SystemExit(f"could not take the lock {self.path}: other runs keep creating it")

    def release(self) -> None:
        if not self.held:
            return
        try:
            with open(self.path) as fh:
                mine = fh.read().strip() == str(os.getpid())
            if mine:
                os.remove(self.path)
        except (OSError, ValueError):
            pass
        self.held = False


_UNREADABLE = (RuntimeError, EOFError, OSError, ValueError, KeyError, pickle.UnpicklingError, zipfile.BadZipFile,
               json.JSONDecodeError, UnicodeDecodeError)


class Checkpoints:
    """Trained models and their evaluations under ``folder``, reused by a rerun when the
    training ``signature`` (a JSON-able dict) and the model's state-dict keys and shapes still match.

    Files are written atomically and read with ``torch.load(..., weights_only=True)`` (tensors,
    numbers, strings, lists and dicts only: extras must be of these types).  A file that cannot
    be read (truncated by a killed run, corrupt) is named in a warning, moved aside to
    ``<name>.corrupt`` and treated as absent, so the model is retrained."""

    def __init__(self, folder: str, signature: Dict) -> None:
        self.folder, self.signature = folder, json.loads(json.dumps(signature, default=str))
        os.makedirs(folder, exist_ok=True)

    def _path(self, tag: str) -> str:
        return os.path.join(self.folder, tag + ".pt")

    def _discard(self, path: str, err: BaseException) -> None:
        warnings.warn(f"checkpoint {path} is unreadable ({type(err).__name__}: {str(err)[:120]}); moved to "
                      f"{os.path.basename(path)}.corrupt and retraining", stacklevel=3)
        print(f"checkpoint {path} is unreadable (truncated or corrupt): retraining it")
        os.replace(path, path + ".corrupt")

    def load(self, tag: str, model: nn.Module) -> Optional[Dict]:
        """Load ``tag`` into ``model`` and return the saved extras, or None (absent, stale or
        unreadable)."""
        path = self._path(tag)
        if not os.path.exists(path):
            return None
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(blob, dict) or "state_dict" not in blob:
                raise ValueError("not a checkpoint of this script (no state_dict)")
        except _UNREADABLE as e:
            self._discard(path, e)
            return None
        mine = model.state_dict()
        saved = blob["state_dict"]
        if (blob.get("signature") != self.signature or set(saved) != set(mine)
                or any(tuple(saved[k].shape) != tuple(mine[k].shape) for k in mine)):
            return None  # stale: another configuration or architecture
        model.load_state_dict(blob["state_dict"])
        return blob

    def save(self, tag: str, model: nn.Module, **extra) -> None:
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        atomic_save({"state_dict": state, "signature": self.signature, **extra}, self._path(tag))

    def load_json(self, name: str) -> Optional[Dict]:
        path = os.path.join(self.folder, name)
        if not os.path.exists(path):
            return None
        try:
            with open(path, encoding="utf-8") as fh:
                return json.load(fh)
        except _UNREADABLE as e:
            self._discard(path, e)
            return None

    def save_json(self, name: str, obj: Dict) -> None:
        atomic_write(os.path.join(self.folder, name), json.dumps(obj, indent=1, default=float))
