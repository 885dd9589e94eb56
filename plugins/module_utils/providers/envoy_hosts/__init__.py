"""envoy_hosts: TODO describe."""
