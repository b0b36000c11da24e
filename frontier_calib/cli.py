"""The `frontier-calib` command line: one click group, one subcommand per stage."""

from __future__ import annotations

import sys

import click

from . import __version__
from .errors import FrontierError


class _Group(click.Group):
    """Print FrontierError (user-fixable input problems) as one clear line, no traceback."""

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


def _register():
    from .cache import cache
    from .profiles.commands import profiles
    from .opmodel.commands import fit
    from .profiling.commands import profile
    from .replay import demo, replay
    from .sweep.commands import sweep
    from .traces.commands import traces
    from .validate.commands import calibrate_cmd as calibrate
    from .validate.commands import validate

    for cmd in (profiles, profile, fit, traces, replay, demo, validate, calibrate, sweep, cache):
        main.add_command(cmd)


_register()

if __name__ == "__main__":  # pragma: no cover
    main()
