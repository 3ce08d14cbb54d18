"""microns_assets: the MICrONS mm3 dataset from CAVE as versioned, analysis-ready Dagster assets.

Importing the package does no work: no network, no file I/O, and no Dagster import.
`microns_assets.load` (from `notebook.py`) is imported on first use, so a notebook that only
reads materialized tables never imports Dagster.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for type checkers and IDEs only; at run time `__getattr__` imports it
    from microns_assets.notebook import load

__version__ = "0.1.0"
__all__ = ["__version__", "load"]


def __getattr__(name: str) -> object:
    if name == "load":
        from microns_assets.notebook import load

        return load
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
