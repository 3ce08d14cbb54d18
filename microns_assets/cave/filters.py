"""`Filters`: the row filters of one CAVE query, passed through every layer as one value.

A query keeps the rows whose columns take one of the listed values (`isin`), and whose integer
columns lie in half-open ranges (`greater_equal` <= value < `less`), which is how a capped
answer is split (`complete.py`). `query_kwargs()` names them as caveclient's `query_table` does.
No Dagster imports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Filters:
    """Which rows of a table a query asks for; no filter at all by default."""

    #: column -> the values it may take
    isin: Mapping[str, Sequence] = field(default_factory=dict)
    #: column -> smallest value kept
    greater_equal: Mapping[str, int] = field(default_factory=dict)
    #: column -> first value not kept
    less: Mapping[str, int] = field(default_factory=dict)

    def in_range(self, key: str, lo: int | None, hi: int | None) -> Filters:
        """These filters, and `lo <= key < hi` too (None: unbounded on that side)."""
        ge, less = dict(self.greater_equal), dict(self.less)
        if lo is not None:
            ge[key] = max(lo, ge.get(key, lo))
        if hi is not None:
            less[key] = min(hi, less.get(key, hi))
        return replace(self, greater_equal=ge, less=less)

    def query_kwargs(self) -> dict[str, dict | None]:
        """The filters under caveclient's `query_table` keyword names (None where empty)."""
        return {
            "filter_in_dict": {k: list(v) for k, v in self.isin.items()} or None,
            "filter_greater_equal_dict": dict(self.greater_equal) or None,
            "filter_less_dict": dict(self.less) or None,
        }


#: Every row.
NO_FILTERS = Filters()
