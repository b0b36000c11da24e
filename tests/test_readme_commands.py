"""Every `frontier-calib ...` command shown in the README must parse against the real CLI.

The README is what a newcomer copies into a shell. This test extracts the commands from its fenced
``bash`` blocks (joining ``\\`` continuations) and parses each one with the click command it names:
unknown subcommands, unknown or misspelt options, bad choices and input paths that do not exist
(``click.Path(exists=True)``) all fail here. Commands are parsed, not run.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from frontier_calib.cli import main

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHARED_TRACES = REPO.parent / "shared" / "traces"


def readme_commands(path: Path) -> list[tuple[int, str]]:
    """(line number, command) for each `frontier-calib` command in the fenced bash blocks of ``path``."""
    out, in_block, pending, start = [], False, "", 0
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip().startswith("```"):
            in_block = (not in_block) and line.strip() in ("```bash", "```sh", "```shell")
            pending = ""
            continue
        if not in_block:
            continue
        text = line.split(" #", 1)[0].rstrip() if not line.lstrip().startswith("#") else ""
        if not pending:
            start = i
        if text.endswith("\\"):
            pending += text[:-1] + " "
            continue
        full, pending = (pending + text).strip(), ""
        for part in re.split(r"\s*(?:&&|;)\s*", full):
            if part.startswith("frontier-calib "):
                out.append((start, part))
    return out


def parse(argv: list[str]) -> None:
    """Parse ``argv`` through the click tree the way the shell would invoke it, without running it."""
    cmd: click.Command = main
    ctx = cmd.make_context("frontier-calib", list(argv))
    while isinstance(cmd, click.Group):
        args = [*ctx._protected_args, *ctx.args] if hasattr(ctx, "_protected_args") else [*ctx.protected_args,
                                                                                         *ctx.args]
        if not args:
            return
        name, sub, rest = cmd.resolve_command(ctx, args)
        cmd = sub
        ctx = sub.make_context(name, rest, parent=ctx)


def earlier_outputs(path: Path, line: int) -> list[str]:
    """Paths written (``--out X``) by the commands shown before ``line`` in the same file."""
    outs = []
    for n, c in readme_commands(path):
        argv = shlex.split(c)
        if n < line:
            outs += [argv[i + 1].rstrip("/") for i, a in enumerate(argv[:-1]) if a in ("--out", "-o")]
    return outs


CASES = [(p, n, c) for p in DOCS for n, c in readme_commands(p)]


def test_readme_shows_commands():
    names = {shlex.split(c)[1] for p, _, c in CASES if p.name == "README.md"}
    # the five-minute tour walks through every stage
    assert {"fit", "replay", "validate", "profiles"} <= names, names


@pytest.mark.parametrize("path,line,command", CASES,
                         ids=[f"{p.name}:{n}" for p, n, _ in CASES])
def test_command_parses(path, line, command, monkeypatch):
    if "../shared/traces" in command and not SHARED_TRACES.is_dir():
        pytest.skip("needs ../shared/traces next to the repository")
    monkeypatch.chdir(REPO)
    argv = shlex.split(command)[1:]
    try:
        parse(argv)
    except click.exceptions.Exit:
        pass   # --help / --version
    except click.UsageError as exc:
        msg = exc.format_message()
        made = earlier_outputs(path, line)
        if "does not exist" in msg and any(f"'{o}" in msg for o in made):
            return   # an input the doc's earlier command writes (e.g. `profile --out DIR` then `fit --profiles DIR`)
        pytest.fail(f"{path.name}:{line}: `{command}` does not parse: {exc.format_message()}")
