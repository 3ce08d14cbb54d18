"""`CARRY_DOWN`: the automation condition on every derived asset of a version.

Dagster's `eager()` (run when a dependency updated; never while a dependency is missing or in
progress, never twice for one update) and every blocking check of the dependencies passed, so
units that failed a blocking check are not carried further (`eager()` alone would download
their chunks). A version therefore moves one stage per tick: raw tables, then units and layer
segments, then the 32 chunks, then the roll-up, whose dependencies are all 32 chunks of its
version: it waits for the last one. Raw tables have no condition: the `cave_versions` sensor
and the refresh schedule request them.

Its own module, imported by the asset modules: the `automation` package (sensors, schedules)
imports the jobs, which import the assets, so the assets must not import `automation`.
"""

import dagster as dg

CARRY_DOWN = (
    dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()
).with_label("eager, upstream blocking checks passed")
