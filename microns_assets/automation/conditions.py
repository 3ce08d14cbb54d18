"""The automation sensor that evaluates `CARRY_DOWN` (`microns_assets/carry_down.py`).

`CARRY_DOWN` goes on `units`/`layer_segments`, `synapse_chunks` and `synapses`; this sensor,
once started, evaluates it every minute in place of Dagster's default automation sensor.
"""

import dagster as dg

from microns_assets.carry_down import CARRY_DOWN

__all__ = ["CARRY_DOWN", "automation_sensor"]

#: Evaluates `CARRY_DOWN` every minute once started (in place of Dagster's default sensor).
automation_sensor = dg.AutomationConditionSensorDefinition(
    "carry_versions_down",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.STOPPED,
    minimum_interval_seconds=60,
    description="Materialize units, layer segments, synapse chunks and the synapses roll-up of "
    "a version once its raw tables (or any other dependency) update.",
)
