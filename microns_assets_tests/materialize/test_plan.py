"""The planner of `materialize`: its asset layout matches the code location; what is current."""

import dagster as dg
import pandas as pd

from microns_assets.materialize.driver import JOB_OPS
from microns_assets.materialize.plan import (
    CHUNKS_ASSET,
    CONFIG_OP,
    RAW_ASSETS,
    ROLLUP_ASSET,
    UNITS_ASSETS,
    Planner,
)
from microns_assets.partitions import VERSION_DIM, mat_version


def test_the_plan_covers_every_asset_and_op_of_the_code_location():
    from microns_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == {*RAW_ASSETS, *UNITS_ASSETS, CHUNKS_ASSET, ROLLUP_ASSET}
    for job, ops in JOB_OPS.items():
        nodes = {n.name for n in defs.resolve_job_def(job).graph.node_defs}
        assert set(ops) <= nodes
    assert set(CONFIG_OP.values()) == {op for ops in JOB_OPS.values() for op in ops}


class _PathIO(dg.ConfigurableIOManager):
    """Writes nothing; records the path of an existing file, as our IO manager does."""

    path: str

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        context.add_output_metadata({"path": self.path, "dagster/row_count": len(obj)})

    def load_input(self, context: dg.InputContext):
        raise NotImplementedError


def test_a_partition_whose_blocking_check_failed_is_not_current(tmp_path):
    file = tmp_path / "units.parquet"
    file.write_bytes(b"stands for a written file")
    spec = dg.AssetCheckSpec("unique_keys", asset="units", blocking=True)

    @dg.asset(name="units", partitions_def=mat_version, check_specs=[spec])
    def units(fail: dg.ResourceParam[bool]):
        yield dg.Output(pd.DataFrame({"a": [1, 2]}))
        yield dg.AssetCheckResult(check_name="unique_keys", passed=not fail)

    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        instance.add_dynamic_partitions(VERSION_DIM, ["1300"])
        for fail in (True, False):
            dg.materialize(
                [units],
                partition_key="1300",
                instance=instance,
                resources={"io_manager": _PathIO(path=str(file)), "fail": fail},
                raise_on_error=False,
            )
            stale = Planner(instance, "1300")._version_latest(("units",))["units"]
            assert stale is not None and stale.path == str(file)  # materialized both times
            assert Planner(instance, "1300")._step_succeeded(stale) is not fail
