"""canary: TODO describe."""
