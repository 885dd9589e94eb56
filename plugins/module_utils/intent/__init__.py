"""intent: TODO describe."""
