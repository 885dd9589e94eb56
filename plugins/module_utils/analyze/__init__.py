"""Semantic analysis of mesh manifests: what ``meshstage check`` and the pipeline run.

- ``manifests``: read YAML files, directories or stdin into resources.
- ``index``: the mesh index, built once per analysis.
- ``analyzers/``: one analyzer per module; ``registry`` lists them.
- ``analysis``: ``analyze(resources)`` runs them and returns a ``Report``.
- ``context``: the estate's stand-in objects, from the intent, for the pipeline.
"""
