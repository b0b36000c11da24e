"""The `frontier-calib` command line: one click group, one subcommand per stage.

Subcommands are imported on demand (their modules pull in pandas, xgboost, matplotlib): ``--help`` and a
command's own start-up pay only for what that command uses.
"""

from __future__ import annotations

import importlib
import sys

import click

from . import __version__
from .errors import FrontierError

#: name -> (module, attribute, one-line summary shown by --help; tests/test_cli_lazy.py keeps it current)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "profiles": ("frontier_calib.profiles.commands", "profiles",
                 "List, show and import profile tables (canonical schema: profiles/README.md)."),
    "profile": ("frontier_calib.profiling.commands", "profile",
                "Profile GEMM, attention, MoE and collective latencies of this machine."),
    "fit": ("frontier_calib.opmodel.commands", "fit",
            "Fit one XGBoost latency model per (operator family, dtype group) and print their accuracy."),
    "traces": ("frontier_calib.traces.commands", "traces", "Inspect request traces and generate synthetic ones."),
    "replay": ("frontier_calib.replay", "replay",
               "Replay a request trace through a deployment; write per-request timings and a vLLM-style summary."),
    "demo": ("frontier_calib.replay", "demo",
             "Replay the bundled sample trace through the bundled Llama-2-7B / H100 / vLLM deployment."),
    "validate": ("frontier_calib.validate.commands", "validate",
                 "Fidelity validation: replay measured benchmarks and report the error."),
    "calibrate": ("frontier_calib.validate.commands", "calibrate_cmd",
                  "Fit the per-engine overheads on a training split of the silicon rows; report held-out vs "
                  "training error."),
    "sweep": ("frontier_calib.sweep.commands", "sweep",
              "Run a sweep file: every point one seeded replay; rows to DIR/results.parquet as they finish."),
    "cache": ("frontier_calib.cache", "cache",
              "Inspect or prune the per-user cache of fitted models and cost tables."),
}


class _Group(click.Group):
    """Lazy subcommands; print FrontierError (user-fixable input problems) as one clear line, no traceback."""

    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, cmd_name):
        if cmd_name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[cmd_name]
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx, formatter):
        """The command list from the summaries above, importing no subcommand module."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = [(n, click.Command(n, help=COMMANDS[n][2]).get_short_help_str(limit)) for n in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def main(self, args=None, *rest, **kwargs):
        try:
            return super().main(args, *rest, **kwargs)
        finally:
            if args is None:   # run as the program on sys.argv (not by a test runner): a quicker exit
                from .shutdown import skip_exit_collections

                skip_exit_collections()

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except FrontierError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="frontier-calib")
def main():
    """frontier-calib: fit operator models from GPU profiles, replay traces, validate fidelity."""


if __name__ == "__main__":  # pragma: no cover
    main()
