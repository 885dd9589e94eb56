"""render: TODO describe."""
