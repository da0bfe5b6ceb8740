"""Netfilter for IPv4: the rule engine (x_tables), iptables' words (iptables), the
hooks in the ip layer (nf_hook), REJECT's answers (nf_reject) and the tools (tools)."""
