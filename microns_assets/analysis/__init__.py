"""After the download: filter cells and connections, remap ids, build connectivity matrices.

Plain, vectorized functions (no Dagster), each taking the frames `microns_assets.load` returns:
`load("units", v)`, `load("synapses", v)`, `load("cave_extra/<table>", v)`. Names and
signatures follow microns-combiner 0.4.0's `filters` and `remapper` where they are right;
where the peer is wrong, the docstring says how this differs. `merge_table` is ours.
"""

from microns_assets.analysis.connectivity import (
    connectivity_matrix,
    remap_all_tables,
    synapses_outside,
    unit_cells,
)
from microns_assets.analysis.filters import (
    connections_from,
    connections_to,
    filter_connections,
    filter_neurons,
    merge_table,
    remove_autapses,
    synapses_by_id,
)

__all__ = [
    "connections_from",
    "connections_to",
    "connectivity_matrix",
    "filter_connections",
    "filter_neurons",
    "merge_table",
    "remap_all_tables",
    "remove_autapses",
    "synapses_by_id",
    "synapses_outside",
    "unit_cells",
]
