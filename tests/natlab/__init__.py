"""NAT lab tier: real NATs in network namespaces (needs root; see README.md)."""
