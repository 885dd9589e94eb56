"""Envoy sidecars on plain hosts: each host's bootstrap, listeners, clusters and secrets per
stage, their check with the real Envoy, and the mesh CA that issues their certificates."""
