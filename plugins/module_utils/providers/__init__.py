"""providers: TODO describe."""
