"""hosts: TODO describe."""
