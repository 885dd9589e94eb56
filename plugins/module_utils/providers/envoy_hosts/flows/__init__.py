"""The host sidecars' flow semantics: what Envoy does with a request, read from the listeners
and clusters meshstage renders for each host, one rule per module."""
