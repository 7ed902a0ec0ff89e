"""mss research: training data, training, the paper's evaluation and probes (imports mss_cli, never the reverse)."""
