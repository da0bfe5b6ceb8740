"""The ip room (net/ipv4: ip_input.c, ip_output.c, ip_forward.c, route.c,
fib_*.c, icmp.c): routing, forwarding, ICMP and the IP SNMP counters."""
