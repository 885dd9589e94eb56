"""Applying to a live cluster: apply and prune order, restart waves and rollout status, the
cluster facts the stage gates read, and rollback checks."""
