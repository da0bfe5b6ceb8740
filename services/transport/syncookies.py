"""SYN cookies (net/ipv4/syncookies.c): when the SYN queue is full, the
SYN-ACK's ISN encodes what the connection needs (the peer's ISN, an MSS index,
a minute counter) under a keyed hash, so the ACK alone can rebuild it (RFC 4987).
A mixin of TcpProto, which owns the tables, the sockets and the transmit path."""
import hashlib

from ..wire import tcp as wire
from ..wire.ethernet import ETH_P_IPV6
from . import tcp_input, tcp_output as xmit
from .tcp import MASK, MS, S, SYN_RECV, TcpSock, set_state

MSS_TABLE = (536, 1300, 1440, 1460)  # msstab[]: the MSS a cookie can carry
MSS_TABLE6 = (1280 - 60, 1480 - 60, 1500 - 60, 9000 - 60)   # net/ipv6/syncookies.c's msstab[]


def mss_table(skb) -> tuple:
    return MSS_TABLE6 if skb.protocol == ETH_P_IPV6 else MSS_TABLE


class SynCookies:
    def _cookie_hash(self, t, saddr, daddr, sport, dport, count: int, which: int) -> int:
        h = hashlib.blake2b(f"{saddr},{daddr},{sport},{dport},{count},{which}".encode(), key=t.cookie_secret,
                            digest_size=4)
        return int.from_bytes(h.digest(), "big")

    def make_cookie(self, t, saddr, daddr, sport, dport, sseq: int, mssind: int, now: int) -> int:
        """secure_tcp_syn_cookie(): hash + client ISN + minute counter in the top
        byte + the MSS index, so the ACK alone rebuilds the connection."""
        count = now // (60 * S)
        return (self._cookie_hash(t, saddr, daddr, sport, dport, 0, 1) + sseq + (count << 24) +
                ((self._cookie_hash(t, saddr, daddr, sport, dport, count, 2) + mssind) & 0xFFFFFF)) & 0xFFFFFFFF

    def check_cookie(self, t, saddr, daddr, sport, dport, sseq: int, cookie: int, now: int) -> int | None:
        """check_tcp_syn_cookie(): the MSS index, or None (too old, or forged)."""
        cookie = (cookie - self._cookie_hash(t, saddr, daddr, sport, dport, 0, 1) - sseq) & 0xFFFFFFFF
        count = now // (60 * S)
        diff = (count - (cookie >> 24)) & 0xFF
        if diff >= 2:                                   # MAX_SYNCOOKIE_AGE
            return None
        mssind = (cookie - self._cookie_hash(t, saddr, daddr, sport, dport, count - diff, 2)) & 0xFFFFFF
        return mssind if mssind < len(MSS_TABLE) else None

    def cookie_synack(self, ns, lsk: TcpSock, skb, th, saddr, daddr, now: int) -> tuple:
        """A SYN-ACK whose ISN is the cookie; the options the ACK cannot carry
        back (window scale, SACK) travel in the timestamp's low bits as Linux does."""
        t = self.tables(ns)
        table = mss_table(skb)
        peer_mss = th.options.mss or 536
        mssind = max(i for i, m in enumerate(table) if m <= peer_mss or i == 0)
        iss = self.make_cookie(t, saddr, daddr, th.sport, th.dport, th.seq, mssind, now)
        tmp = TcpSock(0, ns.name, lsk.family)
        self.init_sock(ns, tmp)
        tmp.ipv6, tmp.hops, tmp.tclass = skb.protocol == ETH_P_IPV6, lsk.hops, lsk.tclass
        tmp.laddr, tmp.lport, tmp.raddr, tmp.rport = daddr, th.dport, saddr, th.sport
        tcp_input.apply_options(tmp, th.options, syn=True, sysctl=ns.sysctl)
        tmp.iss, tmp.rcv_nxt, tmp.rcv_wup = iss, th.seq + 1, th.seq + 1
        tmp.advmss = table[mssind]
        if tmp.ts_ok:
            tmp.ts_recent = th.options.ts[0]
            # cookie_init_timestamp(): low 4 bits the window scale (15 = none), bit 4 SACK
            low = (th.options.wscale if th.options.wscale is not None else 0xF) | (0x10 if tmp.sack_ok else 0)
            tmp.ts_offset = ((self.rng.getrandbits(26) << 6 | low) - now // MS) & MASK
        down = xmit.send_syn(self, ns, tmp, now, synack=True, cause=skb)
        down.skb.sk = 0
        return down

    def cookie_check(self, ns, lsk, skb, th, saddr, daddr, now: int) -> TcpSock | None:
        """cookie_v4_check() / cookie_v6_check(): an ACK to a listener that only a cookie explains."""
        t = self.tables(ns)
        table = mss_table(skb)
        mssind = self.check_cookie(t, saddr, daddr, th.sport, th.dport, (th.seq - 1) & 0xFFFFFFFF,
                                   (th.ack - 1) & 0xFFFFFFFF, now)
        if mssind is None:
            ns.mib["SyncookiesFailed"] += 1
            return None
        ns.mib["SyncookiesRecv"] += 1
        sk = self.new_child(ns, lsk, daddr, th.dport, saddr, th.sport, now, skb.protocol == ETH_P_IPV6,
                            skb.ifindex)
        sk.iss = (th.ack - 1) & 0xFFFFFFFF
        sk.snd_una = sk.snd_nxt = sk.write_seq = sk.iss + 1
        sk.irs = (th.seq - 1) & 0xFFFFFFFF
        sk.rcv_nxt = sk.rcv_wup = sk.irs + 1
        ts = th.options.ts
        opts = wire.TcpOptions(mss=table[mssind])
        if ts is not None and ts[1]:
            low = ts[1] & 0x3F
            wscale = low & 0xF
            opts = wire.TcpOptions(mss=table[mssind], wscale=None if wscale == 0xF else wscale,
                                   sack_perm=bool(low & 0x10), ts=ts)
        tcp_input.apply_options(sk, opts, syn=True, sysctl=ns.sysctl)
        if sk.ts_ok:
            sk.ts_recent, sk.ts_recent_stamp = ts[0], now
            sk.ts_offset = (ts[1] - now // MS) & MASK
        sk.snd_wnd = th.window << sk.snd_wscale
        sk.snd_wl1, sk.snd_wl2 = sk.irs, sk.snd_una
        xmit.initial_window(sk, synack=True)
        set_state(ns, sk, SYN_RECV)
        return sk
