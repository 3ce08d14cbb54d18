"""`CaveSettings`: where CAVE is and how hard to try; checked when built. No Dagster imports."""

from __future__ import annotations

from dataclasses import dataclass, field

from microns_assets.cave.http import HttpPolicy

GLOBAL_SERVER = "https://global.daf-apis.com"
#: The CAVE server's QUERY_LIMIT_SIZE: it cuts every answer at this many rows.
ROW_CAP = 200_000


@dataclass(frozen=True)
class CaveSettings:
    """Where CAVE is and how to talk to it. `token` is never printed (`repr=False`)."""

    datastack: str
    server_address: str = GLOBAL_SERVER
    token: str | None = field(default=None, repr=False)
    http: HttpPolicy = field(default_factory=HttpPolicy)
    #: Tries of one call once its requests' own retries are spent (and of a query whose rows
    #: differ from the server's count).
    call_attempts: int = 4
    call_wait_max_s: float = 30.0
    row_cap: int = ROW_CAP
    #: Requests this connection has in flight at once, at most (all threads together).
    max_in_flight: int = 4

    def __post_init__(self) -> None:
        for name, low in (("call_attempts", 1), ("row_cap", 1), ("max_in_flight", 1)):
            if getattr(self, name) < low:
                raise ValueError(
                    f"CAVE setting {name} must be at least {low}, not {getattr(self, name)}"
                )
        if self.call_wait_max_s < 0:
            raise ValueError(
                f"CAVE setting call_wait_max_s must be >= 0, not {self.call_wait_max_s}"
            )
