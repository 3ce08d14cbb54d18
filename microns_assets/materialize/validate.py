"""Everything `materialize` can check before any run starts: the run config, the versions file.

A bad value gives one `InvalidInput` naming the key and what is allowed, instead of a failed
step per partition. The same models the assets use validate the config (`UnitsConfig`,
`SynapseConfig` and the selection's value sets), so nothing here can drift from them.
"""

from __future__ import annotations

import dagster as dg
import pydantic

from microns_assets import catalogue
from microns_assets.config import ConfigError, load_versions_config
from microns_assets.processing.selection import SelectionError


class InvalidInput(ValueError):
    """Input that would fail every run: say what is wrong and what is allowed."""


#: The chunk step is named as its asset.
CHUNKS_OP = catalogue.SYNAPSE_CHUNKS.name


def _models() -> dict[str, type]:
    from microns_assets.synapses.config import SynapseConfig
    from microns_assets.units.assets import UnitsConfig

    return {"units_and_layers": UnitsConfig, CHUNKS_OP: SynapseConfig}


def _pydantic_message(op: str, err: pydantic.ValidationError) -> str:
    lines = []
    for problem in err.errors():
        where = ".".join(str(p) for p in problem["loc"])
        lines.append(f"ops.{op}.config.{where}: {problem['msg']} (given {problem['input']!r})")
    return "; ".join(lines)


def check_run_config(run_config: dict, job: dg.JobDefinition) -> None:
    """Raise `InvalidInput` for an unknown op, key or value in `run_config`'s `ops:` section.

    `job` (the asset job over every asset) checks the shape, as Dagster would for a run; the
    assets' config models then check the values.
    """
    try:
        dg.validate_run_config(job, run_config)
    except dg.DagsterInvalidConfigError as err:
        raise InvalidInput("; ".join(e.message for e in err.errors)) from err
    models = _models()
    for op, entry in (run_config.get("ops") or {}).items():
        if op not in models:
            raise InvalidInput(f"ops.{op}: no such step; configurable steps: {sorted(models)}")
        if not isinstance(entry, dict) or set(entry) - {"config"}:
            raise InvalidInput(f"ops.{op}: expected only a `config:` mapping")
        try:
            config = models[op](**(entry.get("config") or {}))
        except pydantic.ValidationError as err:
            raise InvalidInput(_pydantic_message(op, err)) from err
        if op == CHUNKS_OP:
            for side in ("pre", "post"):
                try:
                    getattr(config, side).to_side().validate()
                except SelectionError as err:
                    raise InvalidInput(f"ops.synapse_chunks.config.{side}: {err}") from err


def check_versions_file(version: int) -> None:
    """Raise `InvalidInput` if the versions file is malformed or cannot map `version`."""
    try:
        load_versions_config().get(version)
    except ConfigError as err:
        raise InvalidInput(str(err)) from err
