"""schema: TODO describe."""
