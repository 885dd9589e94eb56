"""plan: TODO describe."""
