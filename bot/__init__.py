"""vllm-chatops: Slack ChatOps for fleets of vLLM inference servers."""

__version__ = "0.1.0"
