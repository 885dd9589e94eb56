"""istio: TODO describe."""
