#!/bin/sh
# Copies this machine's tracepoint format files for the tracepoints pktflow
# fires (services/common/tracepoints.py) here, as tests/unit/test_tracepoints.py
# checks the field names against them. Needs tracefs:
#   mount -t tracefs nodev /sys/kernel/tracing
set -eu
cd "$(dirname "$0")"
uname -r > kernel.txt
for tp in skb/kfree_skb net/net_dev_queue net/net_dev_xmit net/netif_receive_skb net/napi_gro_receive_entry \
          qdisc/qdisc_dequeue qdisc/qdisc_enqueue tcp/tcp_retransmit_skb tcp/tcp_send_reset tcp/tcp_probe \
          sock/inet_sock_set_state neigh/neigh_update; do
  mkdir -p "$(dirname "$tp")"
  cp "/sys/kernel/tracing/events/$tp/format" "$tp.format"
done
