"""The `synapse_chunks` and `synapses` assets (wiring of `cave.synapses` and `processing`)."""
