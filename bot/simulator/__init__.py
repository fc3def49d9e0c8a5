"""A simulated vLLM fleet (vLLM V1 engine + DCGM exporter metrics) with injectable faults,
and the Kubernetes API stand-in that, as its twin, acts on it."""
