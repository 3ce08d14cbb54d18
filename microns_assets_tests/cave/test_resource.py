"""`resources.cave.CaveResource`: runs of one process share one connection per settings."""

import dagster as dg

from microns_assets.resources import CaveResource


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
