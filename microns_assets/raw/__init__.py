"""Raw CAVE tables, one asset per role and version. `roles.py` is pure; `assets.py` wires it."""
