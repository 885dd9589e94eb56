"""gitops: TODO describe."""
