"""The link room (net/core/dev.c, net/ethernet, net/ipv4/arp.c, net/core/neighbour.c,
net/sched): Ethernet framing, the ARP neighbour table with its pending queues, packet
taps, and a device's root qdisc (netem) with `tc qdisc`."""
