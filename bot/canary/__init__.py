"""Canary gates: the newest revision of a Deployment against the one before it.

``gates`` (pure verdicts), ``queries`` (the PromQL that splits a Deployment's pods by
revision), ``compare`` (one comparison against Prometheus), ``analysis`` (the gates as an
Argo Rollouts AnalysisTemplate).
"""
