"""`FunctionalReader`: the functional recordings file (HDF5), read by session, trial and stimulus.

The file is the one microns-combiner 0.4.0 reads (layout in `microns_assets.emulator.functional`):
trials per scan (`sessions/{session}_{scan}/trials/{i}`), the condition hash shown in each, the
stimulus videos by hash and type, and which rows of `responses` lie in which brain area. The
methods keep the peer's names and return values, with its two bugs fixed: `with
FunctionalReader(...)` works (the peer's `__exit__` takes no exception arguments, so a `with`
block raises `TypeError`), a trial reached through a video's instances has its own index as
`trial_idx` (the peer's is the link's name, `{session}_{scan}_{trial}`), and an unknown hash,
session, trial, type or area raises `FunctionalKeyError` naming what exists instead of returning
`None`/`(None, None)` or `[]` for the caller to trip over later.

Hashes are given and returned as the experiment writes them (with `/`); the file stores them
with `/` as `%2F` (an HDF5 path separator otherwise).
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from microns_assets.settings import Settings, functional_file


class FunctionalKeyError(KeyError):
    """A session, trial, hash, stimulus type or brain area the file does not have."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0])


def _choices(names: list[str], limit: int = 12) -> str:
    shown = ", ".join(sorted(names)[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def encode_hash(condition_hash: str) -> str:
    """A condition hash as the file names it."""
    return condition_hash.replace("/", "%2F")


def decode_hash(name: str) -> str:
    """A condition hash from its name in the file."""
    return name.replace("%2F", "/")


class FunctionalReader:
    """Read-only access to a functional recordings file; a context manager that closes it.

    Args:
        path: the HDF5 file; default the file the `functional_recordings` asset downloads
            (`microns_assets.settings.functional_file`, under `data_dir`/`datastack`, which
            default to `MICRONS_DATA_DIR`/`MICRONS_DATASTACK`).

    Raises:
        FileNotFoundError: no file there (the message says how to download it).
        OSError: the file is not a readable HDF5 file.
    """

    def __init__(
        self,
        path: str | os.PathLike | None = None,
        *,
        data_dir: str | os.PathLike | None = None,
        datastack: str | None = None,
    ) -> None:
        import h5py  # only when functional data is read

        if path is None:
            base = Settings.from_env()
            settings = Settings(
                server=base.server,
                datastack=datastack or base.datastack,
                data_dir=str(data_dir) if data_dir is not None else base.data_dir,
            )
            path = functional_file(settings)
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(
                f"{self.path}: no functional recordings here. Materialize the "
                "`functional_recordings` asset first (web UI, or `dagster asset materialize -m "
                "microns_assets.definitions --select functional_recordings`)."
            )
        try:
            self.file = h5py.File(self.path, "r")
        except OSError as err:
            raise OSError(
                f"{self.path} is not a readable HDF5 file ({err}); materialize "
                "`functional_recordings` with run config `force: true` to download it again."
            ) from err

    # -- opening and closing ------------------------------------------------------------------

    def close(self) -> None:
        """Close the file (idempotent)."""
        self.file.close()

    @property
    def closed(self) -> bool:
        """True once the file is closed."""
        return not bool(self.file)

    def __enter__(self) -> FunctionalReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- lookups that name what exists ---------------------------------------------------------

    def _group(self, path: str, what: str, parent: str) -> Any:
        if path not in self.file:
            names = list(self.file[parent].keys()) if parent in self.file else []
            if parent == "videos" or parent.startswith("types"):
                names = [decode_hash(n) for n in names]
            raise FunctionalKeyError(f"{what} not in {self.path.name}; it has: {_choices(names)}")
        return self.file[path]

    def _session(self, session_key: str) -> Any:
        return self._group(
            f"sessions/{session_key}", f"session {session_key!r} (`session_scan`)", "sessions"
        )

    def _video(self, condition_hash: str) -> Any:
        return self._group(
            f"videos/{encode_hash(condition_hash)}", f"condition hash {condition_hash!r}", "videos"
        )

    def _area_rows(self, session_key: str, brain_area: str) -> np.ndarray:
        self._session(session_key)
        path = f"sessions/{session_key}/meta/area_indices/{brain_area}"
        if path not in self.file:
            areas = self.get_available_brain_areas(session_key)
            raise FunctionalKeyError(
                f"brain area {brain_area!r} was not recorded in session {session_key}; it has: "
                f"{_choices(areas)}"
            )
        return self.file[path][:]

    # -- what the file holds ------------------------------------------------------------------

    def sessions(self) -> list[str]:
        """Every `session_scan` key, e.g. `4_7`."""
        return sorted(self.file["sessions"].keys())

    def unit_ids(self, session_key: str) -> np.ndarray:
        """The functional unit id of each row of the session's `responses`.

        From `meta/unit_ids` when the file has it; otherwise units are taken to be numbered
        1..N in row order (MICrONS numbers a scan's units from 1).
        """
        group = self._session(session_key)
        if "meta/unit_ids" in group:
            return group["meta/unit_ids"][:].astype(np.int64)
        trials = group["trials"]
        first = next(iter(trials.keys()))
        return np.arange(1, trials[first]["responses"].shape[0] + 1, dtype=np.int64)

    def trial_count(self, session_key: str) -> int:
        """How many trials the session has."""
        return len(self._session(session_key)["trials"])

    def trial_indices(self, session_key: str) -> list[int]:
        """The indices of the session's trials as the file numbers them, ascending."""
        return sorted(int(k) for k in self._session(session_key)["trials"])

    def get_available_brain_areas(self, session_key: str | None = None) -> list[str]:
        """Brain areas recorded in the file, or in one session."""
        if session_key is None:
            return sorted(self.file["brain_areas"].keys())
        meta = self._session(session_key)["meta"]
        return sorted(meta["area_indices"].keys()) if "area_indices" in meta else []

    # -- trials ---------------------------------------------------------------------------------

    def _read_trial(
        self, trial: Any, session_key: str, trial_idx: str, rows: np.ndarray | None
    ) -> dict:
        responses = trial["responses"]
        return {
            "session": session_key,
            "trial_idx": trial_idx,
            "responses": responses[:] if rows is None else responses[:][rows],
            "treadmill": trial["treadmill"][:],
            "pupil": trial["pupil"][:],
            "stim_times": trial["stim_times"][:],
        }

    def get_trial(
        self, session_key: str, trial_idx: int | str, brain_area: str | None = None
    ) -> dict:
        """One trial of a session.

        Returns `session`, `trial_idx`, `responses` (units x frames; only the rows of
        `brain_area` if given), `treadmill`, `pupil`, `stim_times`.
        """
        group = self._session(session_key)
        if str(trial_idx) not in group["trials"]:
            known = self.trial_indices(session_key)
            raise FunctionalKeyError(
                f"trial {trial_idx} not in session {session_key}; it has trials "
                f"{_choices([str(i) for i in known])}"
            )
        rows = None if brain_area is None else self._area_rows(session_key, brain_area)
        return self._read_trial(group[f"trials/{trial_idx}"], session_key, str(trial_idx), rows)

    # -- stimuli ------------------------------------------------------------------------------

    def get_video_data(self, condition_hash: str) -> dict:
        """The stimulus shown for a hash.

        Returns `clip` (frames x height x width), `stim_type`, `duration`, `fps`, and the type's
        own fields (Clip: `movie_name`, `short_movie_name`; Monet2: `directions`, `onsets`,
        `ori_coherence`; Trippy: `temp_freq`, `spatial_freq`).
        """
        video = self._video(condition_hash)
        attrs = video.attrs
        out = {"clip": video["clip"][:], "stim_type": _text(attrs.get("type", "Unknown"))}
        if out["stim_type"] == "Clip":
            out["movie_name"] = _text(attrs.get("movie_name"))
            out["short_movie_name"] = _text(attrs.get("short_movie_name"))
        elif out["stim_type"] == "Monet2":
            out["directions"] = video["directions"][:]
            out["onsets"] = video["onsets"][:]
            out["ori_coherence"] = attrs.get("ori_coherence")
        elif out["stim_type"] == "Trippy":
            out["temp_freq"] = attrs.get("temp_freq")
            out["spatial_freq"] = attrs.get("spatial_freq")
        out["duration"] = attrs.get("duration")
        out["fps"] = attrs.get("fps")
        return out

    def get_video_type(self, condition_hash: str) -> str:
        """`Monet2`, `Trippy` or `Clip`."""
        return _text(self._video(condition_hash).attrs.get("type", "Unknown"))

    def get_full_data_by_hash(self, condition_hash: str, brain_area: str | None = None) -> dict:
        """The stimulus of a hash and every trial that showed it: `clip`, `stim_type`, `trials`.

        With `brain_area`, each trial's responses are the rows of that area; sessions that did
        not record it are left out (an area recorded nowhere in the file raises).
        """
        if brain_area is not None and brain_area not in self.get_available_brain_areas():
            raise FunctionalKeyError(
                f"brain area {brain_area!r} not in {self.path.name}; it has: "
                f"{_choices(self.get_available_brain_areas())}"
            )
        video = self._video(condition_hash)
        data = self.get_video_data(condition_hash)
        out = {"clip": data["clip"], "stim_type": data["stim_type"], "trials": []}
        instances = video.get("instances", {})
        for name in sorted(instances, key=_instance_order):
            session_key, trial_idx = name.rsplit("_", 1)  # `{session}_{scan}_{trial}`
            rows = None
            if brain_area is not None:
                if brain_area not in self.get_available_brain_areas(session_key):
                    continue
                rows = self._area_rows(session_key, brain_area)
            trial = self._read_trial(instances[name], session_key, trial_idx, rows)
            out["trials"].append(trial)
        return out

    def get_responses_by_hash(
        self, condition_hash: str, brain_area: str | None = None
    ) -> list[dict]:
        """`session`, `trial_idx` and `responses` of every trial that showed the hash."""
        trials = self.get_full_data_by_hash(condition_hash, brain_area)["trials"]
        return [{k: t[k] for k in ("session", "trial_idx", "responses")} for t in trials]

    def get_hashes_by_session(
        self, session_key: str, return_unique: bool = False
    ) -> list[str] | set[str]:
        """The hash shown in each trial of a session, in trial order (a set if unique)."""
        names = self._session(session_key)["meta/condition_hashes"][:]
        hashes = [decode_hash(_text(n)) for n in names]
        return set(hashes) if return_unique else hashes

    def get_hashes_by_type(self, stim_type: str) -> list[str]:
        """Hashes of one stimulus type (`Monet2`, `Trippy`, `Clip`)."""
        group = self._group(f"types/{stim_type}", f"stimulus type {stim_type!r}", "types")
        return sorted(decode_hash(k) for k in group)


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes | np.bytes_) else value


def _instance_order(name: str) -> tuple[int, ...]:
    """`{session}_{scan}_{trial}` in numeric order."""
    return tuple(int(p) if p.isdigit() else 0 for p in name.split("_"))
