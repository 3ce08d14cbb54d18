"""Raw CAVE tables, one asset per role and version (what a role holds: `microns_assets.roles`)."""
