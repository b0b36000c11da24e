"""Heavy third-party modules imported on first use, so that a replay of cached cost tables starts quickly.

``from ..lazy import pandas as pd`` gives a stand-in that imports pandas the first time one of its attributes is
read (``pd.DataFrame``, ``pd.read_csv``) and hands every attribute read to it. A module that needs pandas only
to build cost tables, read some trace formats or write result tables can import it this way; the replay of a
deployment whose cost tables are cached, an Azure CSV or a synthetic trace then never imports pandas (and pyarrow,
which pandas imports): about 0.2 s of a 1 s run on the project's 2-core machine (benchmarks/README.md, issue 15).
``tests/test_speed_paths.py`` keeps that path free of them.

Only attribute reads are deferred; type annotations stay strings (``from __future__ import annotations``).
"""

from __future__ import annotations

import importlib
import sys


class LazyModule:
    """Stand-in for the module ``name``, imported when an attribute is first read."""

    def __init__(self, name: str):
        self.__name = name

    def __getattr__(self, attr: str):
        if attr.startswith("_LazyModule__"):   # before __init__ ran (copy, pickle): no such attribute
            raise AttributeError(attr)
        module = sys.modules.get(self.__name)
        if module is None:
            module = importlib.import_module(self.__name)
        return getattr(module, attr)

    def __repr__(self) -> str:
        state = "imported" if self.__name in sys.modules else "not imported yet"
        return f"<lazy module {self.__name!r} ({state})>"


pandas = LazyModule("pandas")
