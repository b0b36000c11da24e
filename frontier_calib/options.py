"""Click options shared by several commands (light: click and names only, no pandas)."""

from __future__ import annotations

import click

from .names import gpu_ids, unknown

overwrite_option = click.option(
    "--overwrite", is_flag=True,
    help="Replace an earlier run's results in --out as a whole (without it, a folder holding files is refused).")

hash_block_size_option = click.option(
    "--hash-block-size", type=click.IntRange(min=1), default=None,
    help="Prompt tokens per hash id of the trace's hash_ids (default: the file's metadata; 512 for Mooncake).")


def gpus_callback(ctx, param, value):
    """Canonical ids for repeated --gpu values; aliases (H100) accepted, unknown names refused."""
    return gpu_ids(value) if value else value


class KnownName(click.Choice):
    """A click.Choice whose refusal is the one-line ``unknown <kind> 'x'; known: ...`` error of names.py."""

    def __init__(self, kind: str, choices, case_sensitive: bool = True):
        super().__init__(list(choices), case_sensitive=case_sensitive)
        self.kind = kind

    def convert(self, value, param, ctx):
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter:
            raise unknown(self.kind, value, self.choices) from None
