"""`resources.cave.CaveResource`: runs of one process share one connection per settings."""

import os

import dagster as dg

from microns_assets.resources import CaveResource
from microns_assets.resources.cave import shared_connection


def _connection(resource: CaveResource):
    with dg.build_resources({"cave": resource}) as resources:
        connection = resources.cave.connection
        connection.versions()  # a call: the client is built
        return connection


def test_runs_of_one_process_share_the_connection_and_its_client(emulator):
    resource = CaveResource(datastack=emulator.datastack, server_address=emulator.url)
    first = _connection(resource)
    built = emulator.server.stats.requests  # the client's construction and one call
    second = _connection(resource)
    assert second is first
    assert emulator.server.stats.requests == built + 1  # the call only: no client built again


def test_other_settings_get_a_connection_of_their_own(emulator):
    one = _connection(CaveResource(datastack=emulator.datastack, server_address=emulator.url))
    fewer = CaveResource(datastack=emulator.datastack, server_address=emulator.url, max_in_flight=1)
    other = _connection(fewer)
    assert other is not one
    assert other.in_flight.limit == 1 and one.in_flight.limit == 4


def test_a_forked_child_makes_connections_of_its_own(emulator):
    parent = _connection(CaveResource(datastack=emulator.datastack, server_address=emulator.url))
    assert shared_connection(parent.settings) is parent
    child = os.fork()
    if child == 0:  # the parent's sockets are not the child's to use
        os._exit(0 if shared_connection(parent.settings) is not parent else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert shared_connection(parent.settings) is parent


def test_warm_builds_the_shared_client_before_any_run(emulator):
    resource = CaveResource(datastack=emulator.datastack, server_address=emulator.url, row_cap=7)
    emulator.server.stats.reset()
    resource.warm().join(timeout=60)
    built = emulator.server.stats.requests
    assert built == 4  # the client's construction (four requests), in the background
    first = _connection(resource)  # the run's: that client, not a new one
    assert emulator.server.stats.requests == built + 1
    assert first is shared_connection(first.settings)
    embedded = CaveResource(datastack=emulator.datastack, server_address="embedded")
    assert embedded.warm() is None  # a run's own emulator: nothing to build before it runs
