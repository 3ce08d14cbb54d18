"""`Emulator`: one synthetic world served on a loopback port, started and stopped in-process."""

from __future__ import annotations

import threading
from pathlib import Path

import pandas as pd

from microns_assets.cave.settings import ROW_CAP
from microns_assets.emulator import cache, catalog
from microns_assets.emulator.query import QueryEngine
from microns_assets.emulator.server import CaveHTTPServer, Faults
from microns_assets.emulator.synthetic import (
    SYNAPSES_PER_NUCLEUS,
    World,
    check_synapses_per_cell,
    generate,
    parse_scale,
)
from microns_assets.emulator.tables import VersionTables

DEFAULT_ROW_CAP = ROW_CAP  # as the real service
#: How often the serving thread looks whether `stop` was asked (socketserver's default: 0.5 s,
#: which every stop of an emulator then waits).
STOP_POLL_S = 0.05


class Emulator:
    """A CAVE emulator serving the synthetic datastack; a context manager.

    Args:
        scale: `small` (3,000 nuclei), `real` (144,120 nuclei) or a nucleus count.
        seed: seed of the synthetic world (same seed, same data).
        host, port: where to listen (port 0 picks a free one).
        row_cap: the server's `QUERY_LIMIT_SIZE`; results are cut there with a `Warning`.
        faults: injected 503s, dropped connections and latency.
        token: if set, every request must carry it (`Authorization: Bearer ...`), else 401.
        cache_dir: where generated worlds are kept (default: `cache.cache_root()`).
        deleted_nuclei: this many nuclei (of typed cells) are missing from every version's
            nucleus table while the annotations referencing them remain: orphans, which the
            server's join of a reference table drops (`tables.deleted_nucleus_ids`).
        synapses_per_cell: synapse density, `n_nuclei * synapses_per_cell` synapses in all
            (default 140; MICrONS has ~2,300). A positive int, else ValueError. Each density
            is a world of its own, cached separately; memory is ~80 bytes per synapse.
    """

    def __init__(
        self,
        scale: str | int = "small",
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        row_cap: int = DEFAULT_ROW_CAP,
        faults: Faults | None = None,
        token: str | None = None,
        datastack: str = catalog.DATASTACK,
        cache_dir: str | Path | None = None,
        deleted_nuclei: int = 0,
        synapses_per_cell: int = SYNAPSES_PER_NUCLEUS,
    ) -> None:
        self.n_nuclei = parse_scale(scale)
        self.synapses_per_cell = check_synapses_per_cell(synapses_per_cell)
        self.seed = seed
        self.datastack = datastack
        self._address = (host, port)
        self._row_cap = row_cap
        self._faults = faults or Faults()
        self._token = token
        self._cache_dir = cache_dir
        self._deleted_nuclei = deleted_nuclei
        self._world: World | None = None
        self._versions: dict[int, VersionTables] = {}
        self._lock = threading.RLock()
        self._server: CaveHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle --------------------------------------------------------------------
    def start(self) -> Emulator:
        """Load (or generate and cache) the world, then serve it on a background thread."""
        engine = QueryEngine(self.tables)
        _ = self.world
        self._server = CaveHTTPServer(
            self._address, engine, self.datastack, self._row_cap, self._faults, self._token
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": STOP_POLL_S},
            name="cave-emulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (once, even if called again meanwhile)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Block until the thread serving requests ends (CLI use)."""
        assert self._thread is not None, "start() first"
        self._thread.join()

    # --- state ------------------------------------------------------------------------
    @property
    def server(self) -> CaveHTTPServer:
        """The running HTTP server (row cap, faults, token, unpublished versions, stats: live)."""
        if self._server is None:
            raise RuntimeError("the emulator is not running: call start() or use `with`")
        return self._server

    @property
    def url(self) -> str:
        """Base URL to give caveclient as `server_address`."""
        return self.server.base_url

    @property
    def world(self) -> World:
        """The synthetic world, generated on first use and cached on disk."""
        with self._lock:
            if self._world is None:
                root = Path(self._cache_dir) if self._cache_dir else cache.cache_root()
                n_versions = len(catalog.VERSIONS)
                density = self.synapses_per_cell
                world = cache.load(root, self.n_nuclei, self.seed, n_versions, density)
                if world is None:
                    world = generate(self.n_nuclei, self.seed, n_versions, density)
                    cache.save(root, world, self.n_nuclei, self.seed, density)
                self._world = world
            return self._world

    def tables(self, version: int) -> VersionTables:
        """The tables of one version (ground truth for tests, bypassing HTTP)."""
        with self._lock:
            if version not in self._versions:
                self._versions[version] = VersionTables(self.world, version, self._deleted_nuclei)
            return self._versions[version]

    def ground_truth(self, version: int, table: str) -> pd.DataFrame:
        """A whole table as stored, as a DataFrame with the server's dtypes."""
        return self.tables(version).get(table).to_pandas()
