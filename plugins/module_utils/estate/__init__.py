"""The estate: what the cluster holds (its real manifests, an export, or stand-ins built from the
intent), as objects, workloads and a registry of hosts, indexed for whoever reads it."""
