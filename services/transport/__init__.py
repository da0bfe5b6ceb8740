"""The transport room (net/ipv4/udp.c, ping.c, tcp*.c, inet_hashtables.c):
sockets' protocol state, port tables and demultiplexing."""
