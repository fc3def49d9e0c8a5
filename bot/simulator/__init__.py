"""A simulated vLLM fleet (vLLM V1 engine + DCGM exporter metrics) with injectable faults."""
