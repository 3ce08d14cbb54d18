"""The `units` and `layer_segments` assets (wiring of `microns_assets.processing`)."""
