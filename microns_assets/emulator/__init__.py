"""The embedded CAVE emulator: a loopback server speaking the CAVE REST API over synthetic data.

Use it in-process as a context manager::

    with Emulator(scale="small") as emu:
        client = CAVEclient(emu.datastack, server_address=emu.url, write_server_cache=False)

or from the shell with `microns-assets emulator`. See `server.py` for the routes, `synthetic.py`
for the world it serves, `query.py` for query semantics.
"""

from microns_assets.emulator.app import Emulator
from microns_assets.emulator.catalog import DATASTACK
from microns_assets.emulator.server import Faults

__all__ = ["DATASTACK", "Emulator", "Faults"]
