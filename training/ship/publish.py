"""Writing a folder that stream/scoring reads (a bundle, the incident embedder): staged and
published whole, with its tokenizer and the versions of the packages that built it.

Every writer builds into a staging folder beside the target and publishes it by rename only
when it is complete, so an interrupted or failed run never leaves something that looks like a
finished bundle, and never loses the one it was to replace.
"""

import os
import platform
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

from stream.errors import ConfigError
from stream.scoring.bundle import MANIFEST, Manifest, TokenizerInfo, sha256_file
from stream.scoring.encoding import Encoder, Windowing

# Recorded in every bundle's manifest (`packages`), with the Python version.
PACKAGES = (
    "wirewatch",
    "torch",
    "transformers",
    "onnx",
    "onnxruntime",
    "tokenizers",
    "scikit-learn",
    "numpy",
)


def refuse_existing(out: Path, force: bool) -> None:
    """ConfigError when `out` exists and --force was not given: call it before the slow work."""
    if out.exists() and not force:
        raise ConfigError(f"{out}: already exists; pass --force to replace it")


def _staging_prefix(out: Path) -> str:
    return f".{out.name}.tmp-"


@contextmanager
def publishing(out: Path, force: bool) -> Iterator[Path]:
    """A new staging folder beside `out` to write into; it becomes `out` when the block succeeds.

    The staging folder is ``.<name>.tmp-<pid>`` in out's parent, so publishing is a rename on one
    file system; those left by killed runs are removed first. On success an existing `out` (with
    force) is renamed aside, the staging folder renamed to `out` and the old one removed: the path
    holds the old folder or the new one, whole, and is missing only between the two renames. On
    any failure, in the block or in the renames, the staging folder is removed and the old `out`
    stays where it was.
    """
    refuse_existing(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(_staging_prefix(out) + "*"):  # left by a killed run
        _remove(stale)
    staging = out.parent / f"{_staging_prefix(out)}{os.getpid()}"
    staging.mkdir()
    try:
        yield staging
        _replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _replace(new: Path, out: Path) -> None:
    # Named like a staging folder, so that the next run removes it if this one dies holding it.
    old = new.with_name(new.name + "-old")
    if os.path.lexists(out):
        os.rename(out, old)
    try:
        os.rename(new, out)
    except BaseException:
        if os.path.lexists(old):
            os.rename(old, out)
        raise
    _remove(old)


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def save_tokenizer(hf_tokenizer: Any, folder: Path, windowing: Windowing) -> tuple[Encoder, TokenizerInfo]:
    """Write `folder`/tokenizer.json and load it back as the scorer will: the encoder and its
    special tokens."""
    path = folder / "tokenizer.json"
    hf_tokenizer.backend_tokenizer.save(str(path))
    special = TokenizerInfo(
        cls_token=hf_tokenizer.cls_token, sep_token=hf_tokenizer.sep_token, pad_token=hf_tokenizer.pad_token
    )
    encoder = Encoder.from_file(
        path,
        windowing,
        cls_token=special.cls_token,
        sep_token=special.sep_token,
        pad_token=special.pad_token,
    )
    return encoder, special


def packages() -> dict[str, str]:
    """The Python version and the installed versions of PACKAGES, for a manifest."""
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def record_inputs(manifest: Manifest, data_files: Iterable[Path]) -> None:
    """Record in `manifest` what the folder was built from: the data files' hashes and packages().

    Call it before writing report.md, which shows both."""
    manifest.data_files = {str(p): sha256_file(p) for p in data_files}
    manifest.packages = packages()


def seal(folder: Path, manifest: Manifest) -> None:
    """Write `folder`/manifest.json, with the hash of every other file in `folder` as `files`.

    Call it last, once every other file of the folder is written."""
    manifest.files = {
        p.name: sha256_file(p) for p in sorted(folder.iterdir()) if p.is_file() and p.name != MANIFEST
    }
    (folder / MANIFEST).write_text(manifest.model_dump_json(indent=2) + "\n")
