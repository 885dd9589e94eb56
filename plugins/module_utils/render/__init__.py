"""Rendering: Jinja templates in, canonical YAML objects out, placed in the GitOps tree with
their kustomizations, sync objects, control-plane install and runbook; a cache of what was done."""
