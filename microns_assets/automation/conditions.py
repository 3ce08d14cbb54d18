"""When Dagster materializes a version's derived assets by itself, and the sensor that decides it.

`CARRY_DOWN` goes on `units`/`layer_segments`, `synapse_chunks` and `synapses`: Dagster's
`eager()` (run when a dependency updated; never while a dependency is missing or in progress,
never twice for one update) and every blocking check of the dependencies passed, so units that
failed a blocking check are not carried further (`eager()` alone would download their chunks).
A version therefore moves one stage per tick: raw tables, then units and layer segments, then
the 32 chunks, then the roll-up, whose dependencies are all 32 chunks of its version: it waits
for the last one. Raw tables have no condition: the `cave_versions` sensor and the refresh
schedule request them.
"""

import dagster as dg

CARRY_DOWN = (
    dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()
).with_label("eager, upstream blocking checks passed")

#: Evaluates `CARRY_DOWN` every minute once started (in place of Dagster's default sensor).
automation_sensor = dg.AutomationConditionSensorDefinition(
    "carry_versions_down",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.STOPPED,
    minimum_interval_seconds=60,
    description="Materialize units, layer segments, synapse chunks and the synapses roll-up of "
    "a version once its raw tables (or any other dependency) update.",
)
