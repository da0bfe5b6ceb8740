"""Wire formats, one module per header: named field offsets, a `parse` that
checks and returns a small record, an `emit` that writes one (smoltcp's
wire/ module is the model). Every layer uses these; none parses by hand."""


class Malformed(ValueError):
    """A header failed a check. `reason` is the kernel's drop reason name
    (DropReason in skb.proto) the caller drops the skb with."""

    def __init__(self, reason: str, what: str):
        super().__init__(f"{reason}: {what}")
        self.reason = reason
        self.what = what
