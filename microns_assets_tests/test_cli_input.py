"""Bad input to the commands: one message naming the flag or setting and what is allowed, exit 2.

Each case used to end in a stack trace, exit 1, or advice that did not apply.
"""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from microns_assets import cli
from microns_assets_tests.materialize.cli_helpers import clean_env, materialize_args, run_cli


def _refused(out: subprocess.CompletedProcess, *messages: str) -> None:
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    for message in messages:
        assert message in out.stderr, out.stderr


def _versions(tmp_path, *flags: str) -> list[str]:
    return [sys.executable, "-m", "microns_assets.cli", "versions",
            "--dagster-home", str(tmp_path / "home"), "--data-dir", str(tmp_path / "data"),
            *flags]  # fmt: skip


@pytest.mark.parametrize("server", ["embeded", "ftp://cave.example.org", "global.daf-apis.com"])
def test_a_mistyped_server_is_named_with_what_to_give(server, tmp_path, emulator_cache):
    out = run_cli(_versions(tmp_path, "--server", server), clean_env(emulator_cache))
    _refused(out, "MICRONS_CAVE_SERVER (or --server)", repr(server), "http:// or https://")


def test_a_mistyped_server_fails_loading_the_code_location(emulator_cache):
    env = {**clean_env(emulator_cache), "MICRONS_CAVE_SERVER": "embeded"}
    load = [sys.executable, "-c", "import microns_assets.definitions"]
    out = subprocess.run(load, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "SettingsError: MICRONS_CAVE_SERVER (or --server) is 'embeded'" in out.stderr


def test_a_data_dir_on_an_unknown_filesystem_is_named(tmp_path, emulator_cache):
    args = _versions(tmp_path, "--server", "embedded")
    args[args.index("--data-dir") + 1] = "s4://bucket/data"
    out = run_cli(args, clean_env(emulator_cache))
    _refused(out, "MICRONS_DATA_DIR (or --data-dir) is 's4://bucket/data'", "Protocol not known")


def test_a_static_base_that_is_not_a_url_is_named(tmp_path, emulator_cache):
    env = {**clean_env(emulator_cache), "MICRONS_STATIC_BASE": "notaurl"}
    out = run_cli(_versions(tmp_path, "--server", "embedded"), env)
    _refused(out, "MICRONS_STATIC_BASE is 'notaurl'", "http(s) URL")


def test_a_file_as_the_dagster_home_is_named(tmp_path, emulator_cache):
    afile = tmp_path / "afile"
    afile.write_text("")
    args = _versions(tmp_path, "--server", "embedded")
    args[args.index("--dagster-home") + 1] = str(afile)
    out = run_cli(args, clean_env(emulator_cache))
    _refused(out, f"cannot use {afile} as the Dagster home (--dagster-home, $DAGSTER_HOME)")


def test_an_unknown_datastack_says_which_flag_names_one(session_emulator, tmp_path):
    args = _versions(tmp_path, "--server", session_emulator.url, "--datastack", "nope")
    out = run_cli(args, clean_env(tmp_path))
    _refused(out, "has no datastack 'nope'", session_emulator.datastack, "`--datastack`")
    assert out.stdout == ""  # the error goes to stderr


def test_a_run_config_file_that_cannot_be_read_exits_2(session_emulator, emulator_cache, tmp_path):
    args = materialize_args(session_emulator, tmp_path / "home", tmp_path / "data")
    out = run_cli([*args, "--config", str(tmp_path / "missing.yaml")], clean_env(emulator_cache))
    _refused(out, "cannot read run config", "missing.yaml", "(--config)")


def test_a_version_the_server_does_not_serve_is_named_as_such(
    session_emulator, emulator_cache, tmp_path
):
    # 500 is not in versions.yaml either: the server's answer is the one that applies
    args = materialize_args(session_emulator, tmp_path / "home", tmp_path / "data")
    args[args.index("1300")] = "500"
    out = run_cli(args, clean_env(emulator_cache))
    _refused(out, "Available versions")
    assert "versions.yaml" not in out.stderr


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--port", "99999", "'99999' is not a whole number from 0 to 65535"),
        ("--port", "http", "'http' is not a whole number from 0 to 65535"),
        ("--row-cap", "0", "'0' is not a whole number >= 1"),
        ("--latency-ms", "-5", "'-5' is not a number of milliseconds >= 0"),
        ("--fail-rate", "abc", "'abc' is not a fraction between 0 and 1"),
    ],
)
def test_the_emulators_flags_are_checked(flag, value, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["emulator", flag, value])
    assert exit_info.value.code == 2
    assert f"argument {flag}: {message}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("scale", "message"), [("tiny", "unknown scale 'tiny'"), ("10", "needs >= 200 nuclei")]
)
def test_a_bad_emulator_scale_is_named(scale, message, capsys):
    assert cli.main(["emulator", "--scale", scale]) == 2
    err = capsys.readouterr().err
    assert "--scale:" in err and message in err


def test_a_port_in_use_is_named(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MICRONS_EMULATOR_CACHE", str(tmp_path))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert cli.main(["emulator", "--scale", "200", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "--port" in err


def test_a_data_dir_that_cannot_be_read_is_named_once(tmp_path, emulator_cache):
    env = {k: v for k, v in clean_env(emulator_cache).items() if not k.startswith("AWS_")}
    env.update(  # no credentials anywhere, and no endpoint to reach
        AWS_EC2_METADATA_DISABLED="true",
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        FSSPEC_S3_ENDPOINT_URL="http://127.0.0.1:1",
    )
    args = _versions(tmp_path, "--server", "embedded")
    args[args.index("--data-dir") + 1] = "s3://bucket/data"
    out = run_cli(args, env)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "cannot read the data dir s3://bucket/data (NoCredentialsError" in out.stderr
    rows = [line for line in out.stdout.splitlines() if line.strip()[:4].isdigit()]
    assert len(rows) >= 8 and all(row.endswith("?") for row in rows)  # listed, local unknown


def test_an_unknown_flag_is_named_with_the_subcommands_usage(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["versions", "--bogus"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: microns-assets versions") and "--dagster-home" in err
    assert "unrecognized arguments: --bogus" in err
