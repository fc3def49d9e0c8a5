"""`vllm-chatops demo` and `runbooks preview`: the whole product on one machine."""
