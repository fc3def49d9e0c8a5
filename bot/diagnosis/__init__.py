"""Diagnosis: runbooks, the checks they run against Prometheus, and the decisions drawn.

``engine`` runs a runbook's checks concurrently and streams results; ``decisions`` turns
them into findings and sized actions; ``checks/`` holds one module per check. Imports only
shared ground (``bot.models``, ``bot.config``, ``bot.sources``), never a front end.
"""
