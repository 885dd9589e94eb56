"""Planning: per environment and stage, which objects exist, from which template, in which stage
folder; the plan model here imports no provider."""
