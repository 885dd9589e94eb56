"""cluster: TODO describe."""
