"""The embedded CAVE emulator: a loopback server speaking the CAVE REST API over synthetic data.

Use it in-process as a context manager::

    with Emulator(scale="small") as emu:
        client = CAVEclient(emu.datastack, server_address=emu.url, write_server_cache=False)

or from the shell with `microns-assets emulator`. See `server.py` for the routes, `synthetic.py`
for the world it serves, `query.py` for query semantics. `Emulator` and `Faults` are imported
lazily, so that code which only needs the datastack name stays light.
"""

from microns_assets.emulator.catalog import DATASTACK

__all__ = ["DATASTACK", "Emulator", "Faults"]


def __getattr__(name: str):
    if name == "Emulator":
        from microns_assets.emulator.app import Emulator

        return Emulator
    if name == "Faults":
        from microns_assets.emulator.server import Faults

        return Faults
    raise AttributeError(name)
