"""The socket room (net/socket.c, net/core/sock.c, net/packet/af_packet.c):
the socket table, receive queues, socket options, packet sockets."""
