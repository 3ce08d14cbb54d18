"""A job of the code location for `dg.reconstructable`, built from this process's environment."""

import dagster as dg


def raw_tables_job() -> dg.JobDefinition:
    """`cave_raw_tables` with the executor `MICRONS_EXECUTOR` names."""
    from microns_assets.definitions import defs

    return defs.resolve_job_def("cave_raw_tables")
