"""Production readiness: the checklist's scorecard, measured where the bot can measure it.

Items and their decision rules are data (``runbooks/readiness/*.yaml``, see ``items``);
``gather`` reads the evidence (Prometheus, Kubernetes, the audit log, the loaded
runbooks), ``decide`` turns evidence into pass / fail / unknown, ``attestations`` holds
what only a person can vouch for, and ``scorecard`` puts them together.
"""
