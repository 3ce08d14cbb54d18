"""The chunk check `matches_server_count`: rows received against the server's own count."""

from __future__ import annotations

import dagster as dg
import numpy as np

from microns_assets.emulator import Faults
from microns_assets.partitions import VERSION_DIM
from microns_assets.processing.chunks import chunk_of
from microns_assets.resources import CaveResource
from microns_assets.storage import read_frame
from microns_assets_tests.conftest import failure_messages
from microns_assets_tests.synapses.conftest import ALL, CAP

CHECK = "matches_server_count"


def download_chunk(
    workspace, chunk: int, config: dict, row_cap: int = CAP, call_attempts: int = 4
) -> dg.ExecuteInProcessResult:
    instance, resources, _ = workspace
    cave = CaveResource(
        datastack=resources["cave"].datastack,
        server_address=resources["cave"].server_address,
        row_cap=row_cap,
        backoff_factor_s=0.01,
        call_attempts=call_attempts,
    )
    return dg.materialize(
        ALL,
        selection=dg.AssetSelection.assets("synapse_chunks"),
        partition_key=dg.MultiPartitionKey({VERSION_DIM: "1300", "synapse_chunk": f"{chunk:02d}"}),
        resources={**resources, "cave": cave},
        instance=instance,
        run_config={"ops": {"synapse_chunks": {"config": config}}},
        raise_on_error=False,
    )


def evaluations(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def onto_chunk(workspace, emulator, chunk: int) -> tuple[int, int]:
    """Ground truth: synapses onto the chunk's units from any cell, and from units only."""
    units = np.unique(read_frame(workspace[2] / "units.parquet")["pt_root_id"].to_numpy(np.int64))
    syn = emulator.ground_truth(1300, "synapses_pni_2")
    onto = syn[syn["post_pt_root_id"].isin(units[chunk_of(units) == chunk])]
    return len(onto), int(onto["pre_pt_root_id"].isin(units).sum())


def test_check_passes_under_a_cap_and_faults(workspace, emulator):
    emulator.server.row_cap = CAP
    emulator.server.faults = Faults(fail_rate=0.2, drop_rate=0.2, seed=13)
    result = download_chunk(workspace, 4, {"mode": "individual"})
    assert result.success
    check = evaluations(result)[CHECK]
    truth, from_units = onto_chunk(workspace, emulator, 4)
    assert check.passed
    assert check.metadata["server_count"].value == truth > CAP  # the count is not capped
    assert check.metadata["rows_received"].value == truth
    assert check.metadata["rows_missing"].value == 0
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["capped_queries_split"].value > 0
    stored = read_frame(workspace[2] / "synapse_chunks" / "04.parquet")
    assert len(stored) == from_units < truth  # pre cells filtered locally, after the count


def test_a_chunk_the_server_loses_rows_of_is_never_stored(workspace, emulator):
    emulator.server.faults = Faults(lose_rate=0.01, seed=2)  # every answer loses rows, silently
    result = download_chunk(workspace, 9, {"mode": "individual"}, row_cap=200_000, call_attempts=2)
    assert emulator.server.stats.rows_lost > 0
    assert not result.success
    message = failure_messages(result)
    assert "rows go missing without an error" in message and "Nothing was stored" in message
    # the batch was downloaded again before giving up, as often as the resource says
    assert "in each of 2 attempts" in message
    assert result.get_asset_materialization_events() == []
    chunk_file = workspace[2] / "synapse_chunks" / "09.parquet"
    assert not chunk_file.exists()


def test_verification_off_sends_no_counts_and_warns(workspace, emulator):
    for verify in (True, False):
        emulator.server.stats.reset()
        result = download_chunk(workspace, 6, {"verify_counts": verify, "batch_size": 40})
        assert result.success  # a warning does not block
        meta = result.get_asset_materialization_events()[0].materialization.metadata
        batches = int(np.ceil(meta["post_cells"].value / 40))
        assert batches > 1
        counts = 1 if verify else 0  # one count for the chunk, beside its sub-batches
        assert emulator.server.stats.queries == meta["queries"].value + counts
        check = evaluations(result)[CHECK]
        assert check.passed is verify
        assert check.severity == (
            dg.AssetCheckSeverity.ERROR if verify else dg.AssetCheckSeverity.WARN
        )
        assert check.metadata["verified"].value is verify
