"""The flow proof: every request the estate makes, judged through the rendered configuration
of each mesh, at the environment's current stage and at the target stage."""
