"""Atomic output writing: a failed run never leaves a half-written file behind.

Every writer goes through :func:`atomic_path`: write to a temporary sibling, then
``os.replace`` it over the destination once the write succeeded; a command's set of result files goes
through :func:`staged_output`, which replaces the whole folder. Every command checks its output paths with
:func:`check_output_dir` / :func:`check_output_file` before its work starts (one-line errors).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from .errors import FrontierError, InputError


_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``dest``; move it onto ``dest`` only on success."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; give outputs normal permissions
        os.replace(tmp_path, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def read_input_text(path: str | os.PathLike) -> str:
    """The text of an input file; InputError when it is empty (or only blank), instead of a confusing parse error
    further on."""
    text = Path(path).read_text(encoding="utf-8")
    if not text.strip():
        raise InputError("the file is empty", path=str(path))
    return text


def yaml_error_text(exc) -> str:
    """A YAML parse error on one line, with where it is: ``line 2, column 1: expected the node content, but found
    '<stream end>'`` (PyYAML's own message spans several lines and quotes the source)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    context = getattr(exc, "context", None)
    return f"{where}{problem}" + (f" ({context})" if context else "")


def read_yaml_mapping(path: str | os.PathLike, *, what: str) -> dict:
    """The mapping a YAML input file holds (a deployment, a sweep, a trace spec: ``what`` names it in errors).
    One-line InputError naming the file when it is missing, empty, not YAML, or not a mapping."""
    import yaml   # lazily: the CLI's start-up does not pay for it

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} file not found", path=str(path))
    try:
        raw = yaml.safe_load(read_input_text(path))
    except yaml.YAMLError as exc:
        raise InputError(f"not valid YAML at {yaml_error_text(exc)}", path=str(path)) from None
    if not isinstance(raw, dict):
        raise InputError(f"expected a YAML mapping of {what} fields", path=str(path))
    return raw


def write_json(obj: Any, dest: str | os.PathLike, *, indent: int = 2) -> Path:
    """Write ``obj`` as JSON atomically (NaN written as null)."""
    with atomic_path(dest) as tmp:
        tmp.write_text(json.dumps(_clean(obj), indent=indent, sort_keys=False) + "\n")
    return Path(dest)


def write_text(text: str, dest: str | os.PathLike) -> Path:
    with atomic_path(dest) as tmp:
        tmp.write_text(text)
    return Path(dest)


def write_table(df, dest: str | os.PathLike) -> Path:
    """Write a DataFrame as Parquet (``.parquet``) or CSV (anything else), atomically."""
    dest = Path(dest)
    with atomic_path(dest) as tmp:
        if dest.suffix == ".parquet":
            df.to_parquet(tmp, index=False, compression="zstd")
        else:
            df.to_csv(tmp, index=False)
    return dest


def _clean(obj: Any) -> Any:
    """Make numpy scalars and NaN JSON-safe."""
    import math

    import numpy as np

    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and (math.isnan(obj) or math.isinf(obj)):
        return None
    return obj


@contextlib.contextmanager
def staged_output(out: Path):
    """Yield a staging folder beside ``out``; on success it becomes ``out``, else it is removed.

    The new set replaces the whole earlier folder (see :func:`replace_dir`), so no file of an older run stays
    beside the new ones, and a failure leaves ``out`` as it was. Whether an earlier run may be replaced is
    the command's decision (:func:`check_output_dir` with ``overwrite``), made before the work starts.
    """
    out = Path(os.path.abspath(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))
    try:
        yield staging
        os.chmod(staging, 0o777 & ~_UMASK)  # mkdtemp makes 0700; give the folder normal permissions
        replace_dir(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def replace_dir(src: Path, dest: Path) -> None:
    """Move folder ``src`` onto ``dest``, replacing a folder there as a whole (renames, then delete the old)."""
    src, dest = Path(src), Path(dest)
    if not dest.exists():
        os.rename(src, dest)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
    os.rename(dest, old / dest.name)
    try:
        os.rename(src, dest)
    except BaseException:
        os.rename(old / dest.name, dest)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def discard_dir(path: Path) -> None:
    """Remove folder ``path`` and everything in it: one rename (it is gone at once), then the delete."""
    path = Path(os.path.abspath(path))
    trash = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
    os.rename(path, trash / path.name)
    shutil.rmtree(trash, ignore_errors=True)


# ------------------------------------------------------------------ checks made before a command's work starts
def check_output_dir(path: str | os.PathLike, *, option: str = "--out", overwrite: bool | None = None) -> Path:
    """Fail now, in one line, if result folder ``path`` could not be written at the end of the run.

    ``overwrite``: None when the folder may hold anything (a resumable store); False refuses a folder that
    holds files (an earlier run); True lets the run replace it as a whole.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FrontierError(f"{option} {path} is a file, not a folder")
    _check_writable(path, option)
    if path.exists():  # the finished set is staged beside it, then renamed over it
        _check_writable(path.parent, option, shown=path)
    if path.is_dir() and overwrite is not None:
        if not overwrite and any(path.iterdir()):
            raise FrontierError(f"{option} {path} holds an earlier run; pass --overwrite to replace it, "
                                "or choose a new folder")
        here = Path.cwd().resolve()
        if overwrite and (path.resolve() == here or path.resolve() in here.parents
                          or path.resolve() == Path.home().resolve()):
            raise FrontierError(f"{option} {path} contains the current or home folder; "
                                "--overwrite will not replace it (choose a folder for this run's results)")
    return path


def check_output_file(path: str | os.PathLike, *, option: str = "--out", overwrite: bool | None = None) -> Path:
    """Fail now, in one line, if output file ``path`` could not be written at the end of the run.

    ``overwrite``: None replaces an existing file silently; False refuses it; True allows replacing it.
    """
    path = Path(path)
    if path.is_dir():
        raise FrontierError(f"{option} {path} is a folder, not a file")
    _check_writable(path.parent, option, shown=path)
    if path.exists() and overwrite is False:
        raise FrontierError(f"{option} {path} exists (an earlier run); pass --overwrite to replace it, "
                            "or choose a new name")
    return path


def _check_writable(folder: Path, option: str, *, shown: Path | None = None) -> None:
    """``folder`` exists and files can be created in it, or it can be created: else FrontierError."""
    shown = folder if shown is None else shown
    anc = Path(os.path.abspath(folder))
    while not anc.exists():
        anc = anc.parent
    if not anc.is_dir():
        raise FrontierError(f"{option} {shown} cannot be created: {anc} is a file, not a folder")
    try:  # create and remove a probe file: catches permissions, read-only mounts and pseudo file systems
        fd, probe = tempfile.mkstemp(prefix=".frontier-calib-probe-", dir=anc)
    except OSError as exc:
        raise FrontierError(f"{option} {shown} cannot be written: files cannot be created in {anc} "
                            f"({exc.strerror or exc.__class__.__name__})") from None
    os.close(fd)
    os.unlink(probe)
