"""The subcommands of `microns-assets`, one module each; `cli.py` only parses arguments.

Each module imports Dagster and caveclient lazily inside its function, so `--help` is instant.
"""
