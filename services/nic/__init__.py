"""The nic room (drivers/net, NAPI): emulated network devices with fixed-size
TX/RX rings, FCS, the cables between interfaces, and their counters."""
