"""The real code location with test resources, and ticks applied the way the daemon applies them."""

from __future__ import annotations

import dagster as dg

from microns_assets.resources import CaveResource, ParquetIOManager


def location(cave: CaveResource, data_dir) -> dg.Definitions:
    """`microns_assets.definitions.defs` (assets, jobs, sensors, schedules) on test resources."""
    from microns_assets.definitions import defs

    io = ParquetIOManager(data_dir=str(data_dir), datastack=cave.datastack)
    return dg.Definitions(
        assets=defs.assets,
        jobs=defs.jobs,
        sensors=defs.sensors,
        schedules=defs.schedules,
        resources={"cave": cave, "io_manager": io},
    )


def emulator_cave(emulator, **settings) -> CaveResource:
    """The CAVE resource pointed at the test emulator, with fast retries."""
    return CaveResource(
        datastack=emulator.datastack, server_address=emulator.url, backoff_factor_s=0.01, **settings
    )


def sensor_context(
    defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None = None
) -> dg.SensorEvaluationContext:
    """A sensor context as the daemon builds it: the location's resources, the instance's ref.

    With the ref, run requests are validated against the instance's partitions plus the tick's
    own additions, as in a real tick.
    """
    return dg.build_sensor_context(
        instance=instance,
        instance_ref=instance.get_ref(),
        cursor=cursor,
        definitions=defs,
        resources=defs.resources,
    )


def sensor_tick(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None):
    """One `cave_versions` tick; its new partitions are added as the sensor daemon would."""
    sensor = defs.resolve_sensor_def("cave_versions")
    with sensor_context(defs, instance, cursor) as context:
        data = sensor.evaluate_tick(context)
    for request in data.dynamic_partitions_requests:
        assert isinstance(request, dg.AddDynamicPartitionsRequest)  # never a deletion
        instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
    return data


def added_keys(data) -> list[str]:
    """Partition keys a tick asked to add."""
    return [k for r in data.dynamic_partitions_requests for k in r.partition_keys]


def run_request(defs: dg.Definitions, instance: dg.DagsterInstance, request: dg.RunRequest):
    """Execute a run request in process, as the run launcher would."""
    job = defs.resolve_job_def(request.job_name)
    return job.execute_in_process(
        instance=instance,
        partition_key=request.partition_key,
        tags=dict(request.tags),
        raise_on_error=False,
    )
