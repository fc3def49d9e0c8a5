"""The only modules that talk to the outside world (Prometheus, Alertmanager, Kubernetes)."""
