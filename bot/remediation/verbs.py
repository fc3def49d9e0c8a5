"""The action verbs of `/vllm` and `vllm-chatops act` (a leaf: the CLI parser needs only these)."""

ACTION_VERBS = ("scale", "rollback", "restart", "drain", "uncordon", "silence", "unsilence")
