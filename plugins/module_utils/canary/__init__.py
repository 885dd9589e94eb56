"""Canary delivery by commit: a run's record in the GitOps repository, the decisions on
Prometheus' figures, what a run renders, and one round of ``playbooks/canary.yml``."""
