"""Remediation: action requests, plans, permission, approval, execution, audit, verification.

Speaks in its own terms (a request, an actor, a plan, an outcome, progress events); each
front end (Slack, the terminal) renders them. ``actions/`` holds one module per action.
Imports diagnosis (to verify) and shared ground, never a front end.
"""
