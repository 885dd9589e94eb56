"""Strict schema validation of rendered objects against the CRDs in force and the
Kubernetes core schemas, the way an API server with strict field validation judges them."""
