"""The queues between layers are fair across namespaces: a flooded host fills
and overflows its own queue, its neighbours' skbs still go in and come out in
the next batch, and only the flooded host's senders wait."""
import asyncio
from types import SimpleNamespace

from pktflow.services.common.plumbing import HIGH_WATER, MAX_BATCH, NS_HIGH, NS_LIMIT, QUEUE_LIMIT, Outbox


def skb(netns: str, n: int = 0):
    return SimpleNamespace(netns=netns, n=n)


def test_a_flooded_namespace_loses_its_own_skbs_not_its_neighbours():
    async def run():
        ob = Outbox()
        flood = [ob.put(skb("h2", i)) for i in range(NS_LIMIT + 500)]
        assert flood.count(True) == NS_LIMIT and not any(flood[NS_LIMIT:])      # CPU_BACKLOG for h2 only
        assert all(ob.put(skb("h1", i)) for i in range(10))
        batch = await ob.take()
        assert len(batch) == MAX_BATCH
        assert [s.n for s in batch if s.netns == "h1"] == list(range(10))        # in the first batch, in order
        assert [s.n for s in batch if s.netns == "h2"] == list(range(MAX_BATCH - 10))
        rest = []
        while len(ob):
            rest += await ob.take()
        assert [s.n for s in rest] == list(range(MAX_BATCH - 10, NS_LIMIT))
    asyncio.run(run())


def test_namespaces_take_turns_batch_after_batch():
    async def run():
        ob = Outbox()
        for i in range(3 * MAX_BATCH):
            for ns in ("a", "b", "c"):
                ob.put(skb(ns, i))
        seen = {"a": 0, "b": 0, "c": 0}
        for _ in range(3):
            for s in await ob.take():
                seen[s.netns] += 1
        assert max(seen.values()) - min(seen.values()) <= MAX_BATCH // 3 + 1, seen
    asyncio.run(run())


def test_only_the_flooded_namespaces_senders_wait():
    async def run():
        ob = Outbox()
        for i in range(NS_HIGH):
            ob.put(skb("h2", i))
        assert len(ob) < HIGH_WATER                           # one namespace never stalls everyone
        await asyncio.wait_for(ob.room("h1"), 1)              # h1's sender goes on
        await asyncio.wait_for(ob.room(), 1)                  # and so does a batch from above
        h2 = asyncio.ensure_future(ob.room("h2"))
        await asyncio.sleep(0)
        assert not h2.done()                                  # h2's sender waits for its queue to drain
        await ob.take()
        await asyncio.wait_for(h2, 1)
    asyncio.run(run())


def test_all_namespaces_together_are_bounded():
    async def run():
        ob = Outbox()
        accepted = sum(ob.put(skb(f"ns{k}")) for k in range(QUEUE_LIMIT // NS_LIMIT + 2) for _ in range(NS_LIMIT))
        assert accepted == len(ob) == QUEUE_LIMIT
        stalled = asyncio.ensure_future(ob.room())
        await asyncio.sleep(0)
        assert not stalled.done()
        while len(ob) >= HIGH_WATER:
            await ob.take()
        await asyncio.wait_for(stalled, 1)
        left = len(ob)
        assert len(ob.clear()) == left and len(ob) == 0
    asyncio.run(run())
