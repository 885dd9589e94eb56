"""Linkerd's flow semantics (inbound policy, injection, routes): one rule per module, in the
order of registry.py, each citing the linkerd.io page or linkerd/linkerd2 code it follows."""
