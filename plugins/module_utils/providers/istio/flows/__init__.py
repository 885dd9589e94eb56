"""Istio's flow semantics (sidecar mode): one rule per module, in the order of registry.py,
each citing the istio.io page or istio/istio code it follows."""
