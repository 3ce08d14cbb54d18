"""Value sets of the MICrONS tables. Pure constants."""

CLASSIFICATION_SYSTEMS = ("excitatory_neuron", "inhibitory_neuron", "nonneuron")
CELL_TYPES = (
    "23P", "4P", "5P-IT", "5P-ET", "5P-NP", "6P-IT", "6P-CT",
    "BC", "BPC", "MC", "NGC",
    "OPC", "astrocyte", "microglia", "pericyte", "oligo",
)  # fmt: skip
BRAIN_AREAS = ("V1", "AL", "RL", "LM")
STRATEGY_AXON = (
    "none",
    "axon_column_truncated",
    "axon_interareal",
    "axon_partially_extended",
    "axon_fully_extended",
)
STRATEGY_DENDRITE = ("none", "dendrite_clean", "dendrite_extended")
CORTICAL_LAYERS = ("L1", "L2/3", "L4", "L5", "L6")
