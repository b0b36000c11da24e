"""The CLI imports a subcommand's module only when that subcommand runs: `frontier-calib --help` stays fast."""

from __future__ import annotations

import gc
import subprocess
import sys

import pytest

from frontier_calib.cli import COMMANDS, main

HEAVY = ("pandas", "xgboost", "matplotlib", "pyarrow")


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_summary_matches_the_command(name):
    cmd = main.get_command(None, name)
    assert cmd is not None and cmd.name == name
    assert cmd.get_short_help_str(200) == COMMANDS[name][2]


def test_unknown_subcommand_is_a_usage_error():
    from click.testing import CliRunner

    result = CliRunner().invoke(main, ["fitt"])
    assert result.exit_code == 2 and "No such command 'fitt'" in result.output


@pytest.mark.parametrize("argv", [["--help"], ["replay", "--help"], ["demo", "--help"]])
def test_help_imports_no_heavy_module(argv):
    code = ("import sys\nfrom frontier_calib.cli import main\n"
            f"try:\n    main({argv!r})\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]", out


def test_run_as_the_program_the_exit_skips_collecting_and_a_test_runner_call_does_not():
    """frontier_calib/shutdown.py: on sys.argv the CLI freezes the objects alive at the end (a quicker exit);
    called with explicit arguments (tests, other Python callers) it leaves the garbage collector alone."""
    code = ("import gc, sys\nfrom frontier_calib.cli import main\nsys.argv = ['frontier-calib', '--help']\n"
            "try:\n    main()\nexcept SystemExit as e:\n    print(e.code, gc.get_freeze_count() > 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "0 True", out
    from click.testing import CliRunner

    before = gc.get_freeze_count()
    assert CliRunner().invoke(main, ["--help"]).exit_code == 0
    assert gc.get_freeze_count() == before
