"""The GitOps repository: the one write path (only the files meshstage owns, atomically, only
what changed), its ownership state, its paths, and one commit per run."""
