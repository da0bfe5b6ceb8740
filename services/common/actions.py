"""What a core asks its shell to do: the actions a core call returns, in order.

A core never sends, sleeps or traces; it returns a list of these and the
shell (or the in-process netstack) carries them out. `fn` is the kernel
function that did the work, the span's name, or a tuple of nested ones
("ip_rcv", "ip_forward", "ip_output").

Actions are values: nothing changes one after it is made. They are not
frozen dataclasses only because a frozen __init__ costs 2.5 times a plain one
and every packet makes several at every layer.
"""
from dataclasses import dataclass


@dataclass(slots=True)
class Down:
    """Hand the skb to the layer below."""
    skb: object
    fn: str | tuple


@dataclass(slots=True)
class Up:
    """Hand the skb to the layer above; `to` names it where there are two
    (link hands ARP-less packets to ip and taps to socket), else None."""
    skb: object
    fn: str | tuple
    to: str | None = None


@dataclass(slots=True)
class Drop:
    """kfree_skb_reason(): `reason` is a DropReason name (skb.proto)."""
    skb: object
    fn: str | tuple
    reason: str


@dataclass(slots=True)
class Stop:
    """The skb's hop ends here without a drop: consumed, or parked in a queue
    it will leave by a later action."""
    skb: object
    fn: str | tuple


@dataclass(slots=True)
class Merge:
    """The skb's journey takes in others here (reassembly: the fragments'):
    spans named `fn`, the last linking to each (trace_id, span_id) in
    `links`; the hop goes on with the actions that follow."""
    skb: object
    fn: str | tuple
    links: tuple


@dataclass(slots=True)
class Step:
    """A step of an `fn` tuple whose span carries attributes of its own: a
    netfilter hook says which table, chain and rule decided, and the verdict."""
    name: str
    attrs: tuple            # (key, value) pairs


@dataclass(slots=True)
class Arm:
    """(Re)arm the core's timer `key` to fire at monotonic ns `when`."""
    key: object
    when: int


@dataclass(slots=True)
class Cancel:
    """Cancel the core's timer `key` (nothing if it is not armed)."""
    key: object


@dataclass(slots=True)
class AskRoute:
    """ip_route_output_key() in another room: the core needs the route from
    saddr to daddr in `netns` before a call can go on. The shell asks the ip
    layer and hands the answer to the core's route_answer(), which resumes the
    calls that waited for it (and only them: other sockets go on meanwhile)."""
    netns: str
    daddr: int
    saddr: int


# The actions that carry an skb (and so end a hop of its journey).
HOPS = (Down, Up, Drop, Stop)
