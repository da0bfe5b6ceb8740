"""What several layers share: the topology, sysctls, counters, tracing and the
stream plumbing between layers."""
