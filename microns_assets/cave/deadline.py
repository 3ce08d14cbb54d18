"""`call_within`: run a call that may block forever, and stop waiting for it at a deadline.

For work whose blocking we cannot bound from inside, such as the requests caveclient makes
while it is built (they carry no timeout). The call runs in a daemon thread: abandoned at the
deadline, it ends on its own whenever the server answers, and it never keeps the process from
exiting (unlike a `ThreadPoolExecutor` worker, which the interpreter joins at exit).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: Prefix of the names of the threads `call_within` starts.
THREAD_PREFIX = "cave-deadline"


class DeadlineExceeded(TimeoutError):
    """The call did not return within its deadline (it may still be running)."""


def call_within(seconds: float, fn: Callable[..., T], *args, **kwargs) -> T:
    """`fn(*args, **kwargs)`'s result or exception, or `DeadlineExceeded` after `seconds`."""
    done = threading.Event()
    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            outcome["value"] = fn(*args, **kwargs)
        except BaseException as err:  # handed to the caller, who may re-raise it
            outcome["error"] = err
        finally:
            done.set()

    thread = threading.Thread(target=target, name=f"{THREAD_PREFIX}-{fn.__name__}", daemon=True)
    thread.start()
    if not done.wait(seconds):
        raise DeadlineExceeded(f"no result within {seconds:.1f} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
