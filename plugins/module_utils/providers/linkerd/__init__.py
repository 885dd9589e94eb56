"""linkerd: TODO describe."""
