"""Coalesced presence (docs/design.md §5, "Presence frames"): a join storm costs each member a
few presence frames per tick instead of one per joiner, and every socket, applying its welcome
and then each presence frame as the page does (joined: set-add, left: set-remove), ends with
the room's true member list: for joins, leaves, a join and a leave within one tick (either
order), and across replicas."""

from __future__ import annotations

import asyncio
import json
from contextlib import AsyncExitStack

from prometheus_client import REGISTRY
from websockets.asyncio.client import ClientConnection

from chat import protocol, wire
from chat.presence_batch import (
    MAX_TICK_S,
    MAX_USERS_PER_FRAME,
    TICK_SHARE_OF_BOUND,
    _Tick,
    frames,
    tick_seconds,
)
from chat.protocol import User
from tests.conftest import StartChat
from tests.helpers import Chat, MemberList, keep_reading, recv_presence, recv_type, until

K = 50  # joiners in a storm


def presence_sent() -> float:
    return REGISTRY.get_sample_value("chat_presence_frames_total") or 0.0


async def open_member(stack: AsyncExitStack, chat: Chat, sub: str,
                      room: str = "storm") -> tuple[ClientConnection, MemberList]:  # fmt: skip
    ws = await stack.enter_async_context(chat.join(room, sub, f"Name {sub}"))
    return ws, MemberList(await recv_type(ws, wire.FRAME_WELCOME))


async def fill_room(stack: AsyncExitStack, chat: Chat, room: str,
                    sockets: int) -> tuple[ClientConnection, MemberList]:  # fmt: skip
    """A room of `sockets` members, joined at once; returns the first once it has seen them
    all, so no tick of the room is left pending."""
    first, seen = await open_member(stack, chat, f"{room}0", room=room)
    await asyncio.gather(*(open_member(stack, chat, f"{room}{i}", room=room)
                           for i in range(1, sockets)))  # fmt: skip
    await seen.follow(first, lambda s: len(s.members) == sockets)
    return first, seen


async def time_to_hear(stack: AsyncExitStack, chat: Chat, room: str, sub: str,
                       ws: ClientConnection, seen: MemberList) -> float:  # fmt: skip
    """Seconds from `sub` starting to join `room` until member `ws` hears of it."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    await open_member(stack, chat, sub, room=room)
    await seen.follow(ws, lambda s: sub in s.members)
    return loop.time() - started


async def nothing_more(ws: ClientConnection, within_s: float = 0.4) -> None:
    try:
        async with asyncio.timeout(within_s):
            frame = await ws.recv()
    except TimeoutError:
        return
    raise AssertionError(f"unexpected frame: {frame!r}")


async def test_a_join_storm_costs_each_member_a_few_frames_not_one_per_joiner(
    start_chat: StartChat,
) -> None:
    chat = await start_chat(presence_coalesce_ms=200)
    async with AsyncExitStack() as stack:
        alice, seen = await open_member(stack, chat, "early")
        before = presence_sent()
        # K joiners at once: handshakes in parallel, all within a tick or two.
        joiners = await asyncio.gather(*(open_member(stack, chat, f"j{i}") for i in range(K)))
        truth = {"early": "Name early"} | {f"j{i}": f"Name j{i}" for i in range(K)}
        await seen.follow(alice, lambda s: s.members == truth)
        await seen.settle(alice)
        assert seen.members == truth
        assert seen.frames <= 3, f"{seen.frames} presence frames for {K} joiners"
        for ws, theirs in joiners:  # welcomed mid-storm: welcome + frames make the same list
            await theirs.settle(ws, quiet_s=0.05)
            assert theirs.members == truth, (len(theirs.members), len(truth))
        sent = presence_sent() - before
        received = seen.frames + sum(theirs.frames for _, theirs in joiners)
        assert sent == received
        print(f"\n{K} joiners: {seen.frames} presence frames to the early member, {sent} in all"
              f" (one frame per join and member would be {K * (K + 1) // 2})")  # fmt: skip
        # One frame per member per tick at most: nowhere near one per member per joiner.
        assert sent <= 3 * (K + 1) < K * (K + 1) // 2, sent


async def test_leaves_coalesce_and_lists_stay_right(start_chat: StartChat) -> None:
    chat = await start_chat(presence_coalesce_ms=200)
    async with AsyncExitStack() as stack:
        alice, seen = await open_member(stack, chat, "early")
        async with AsyncExitStack() as leaving:
            await asyncio.gather(*(open_member(leaving, chat, f"g{i}") for i in range(20)))
            await seen.follow(alice, lambda s: len(s.members) == 21)
            stay_ws, stay = await open_member(stack, chat, "stays")
            await seen.follow(alice, lambda s: "stays" in s.members)
            frames_before = seen.frames
        # All 20 closed at once (the exit stack): one tick, one frame.
        truth = {"early": "Name early", "stays": "Name stays"}
        await seen.follow(alice, lambda s: s.members == truth)
        await stay.follow(stay_ws, lambda s: s.members == truth)
        for ws, member in ((alice, seen), (stay_ws, stay)):
            await member.settle(ws)
            assert member.members == truth
        assert seen.frames - frames_before <= 2, seen.frames - frames_before


async def test_a_join_and_a_leave_within_one_tick_cancel_out(start_chat: StartChat) -> None:
    chat = await start_chat(presence_coalesce_ms=300)
    async with AsyncExitStack() as stack:
        alice, _ = await open_member(stack, chat, "alice")
        async with chat.join("storm", "bob", "Name bob") as bob:
            assert {m["id"] for m in (await recv_type(bob, wire.FRAME_WELCOME))["members"]} == {
                "alice", "bob"}  # fmt: skip
        await nothing_more(alice, 0.6)  # nothing changed for her: no frame at all


async def test_a_leave_and_a_join_within_one_tick_keep_every_list_right(
    start_chat: StartChat,
) -> None:
    """Bob reloads (his only tab goes, a new one comes) while Carol arrives in between: Alice
    hears only of Carol; Carol, whose welcome lacked Bob, hears only of him; Bob of nobody."""
    chat = await start_chat(presence_coalesce_ms=400)
    async with AsyncExitStack() as stack:
        alice, _ = await open_member(stack, chat, "alice")
        async with chat.join("storm", "bob", "Name bob") as bob:
            await recv_type(bob, wire.FRAME_WELCOME)
            await recv_presence(alice, joined=("bob",))
        relay = chat.servers.relay
        await until(lambda: "bob" not in {u.id for u in relay.members("storm")}, "Bob's leave")
        carol_ws, carol = await open_member(stack, chat, "carol")
        assert set(carol.members) == {"alice", "carol"}
        bob_ws, bob_again = await open_member(stack, chat, "bob")
        truth = {"alice": "Name alice", "bob": "Name bob", "carol": "Name carol"}
        assert bob_again.members == truth
        await recv_presence(alice, joined=("carol",))
        await recv_presence(carol_ws, joined=("bob",))
        await nothing_more(bob_ws)
        await nothing_more(alice, 0.1)
        await nothing_more(carol_ws, 0.1)


async def test_presence_across_two_replicas(start_chat: StartChat) -> None:
    a, b = await start_chat(presence_coalesce_ms=200), await start_chat(presence_coalesce_ms=200)
    async with AsyncExitStack() as stack:
        alice, seen = await open_member(stack, a, "alice")
        async with AsyncExitStack() as storm:
            on_b = await asyncio.gather(*(open_member(storm, b, f"b{i}") for i in range(30)))
            on_a = await asyncio.gather(*(open_member(storm, a, f"a{i}") for i in range(10)))
            truth = ({"alice": "Name alice"} | {f"b{i}": f"Name b{i}" for i in range(30)}
                     | {f"a{i}": f"Name a{i}" for i in range(10)})  # fmt: skip
            await seen.follow(alice, lambda s: s.members == truth)
            for ws, theirs in [*on_b, *on_a]:
                await theirs.follow(ws, lambda s: s.members == truth)
            await seen.settle(alice)
            assert seen.members == truth
            # 40 joins (30 from B's envelopes, 10 local) in a few ticks, not 40 frames.
            assert seen.frames <= 6, seen.frames
        await seen.follow(alice, lambda s: s.members == {"alice": "Name alice"})
        assert seen.frames <= 10, seen.frames


async def test_a_big_room_ticks_at_its_frame_budget_and_a_small_one_at_once(
    start_chat: StartChat,
) -> None:
    """PRESENCE_FRAMES_PER_S at 50: in a room of 31 sockets a tick lasts 0.62 s, so joins 40 ms
    apart reach a member in a frame or two (one per join at the base tick of 20 ms), and the
    first no sooner than its tick; a join into a room of two, on the same server, comes at the
    base tick."""
    chat = await start_chat(presence_coalesce_ms=20, presence_frames_per_s=50)
    loop = asyncio.get_running_loop()
    async with AsyncExitStack() as stack:
        alice, seen = await fill_room(stack, chat, "big", 31)
        heard_before = seen.frames

        async def join_one_by_one() -> None:
            for i in range(12):
                await open_member(stack, chat, f"j{i}", room="big")
                await asyncio.sleep(0.04)

        started = loop.time()
        joining = asyncio.create_task(join_one_by_one())
        await seen.follow(alice, lambda s: "j0" in s.members)
        first_after = loop.time() - started
        await joining
        await seen.follow(alice, lambda s: len(s.members) == 43)
        heard = seen.frames - heard_before
        assert first_after >= 0.5, f"j0's join arrived after {first_after:.2f} s"
        assert heard <= 4, f"{heard} frames for 12 joins"

        bob, bobs = await open_member(stack, chat, "bob", room="small")
        took = await time_to_hear(stack, chat, "small", "carol", bob, bobs)
        assert took < 0.3, f"the small room heard its join after {took:.2f} s"


async def test_rooms_ticking_at_once_share_the_frame_budget_and_a_small_room_keeps_its_pace(
    start_chat: StartChat,
) -> None:
    """PRESENCE_FRAMES_PER_S is the server's: at 100, a room of 40 sockets alone ticks 0.4 s
    and takes it all, so a second room of 40 that starts ticking meanwhile gets an equal share,
    50, and a tick of 0.8 s (0.4 s with a budget per room). A room of two that starts ticking
    then still gets a third, at most 0.06 s for its two sockets, not the longest tick."""
    chat = await start_chat(presence_coalesce_ms=20, presence_frames_per_s=100)
    async with AsyncExitStack() as stack:
        await fill_room(stack, chat, "one", 40)
        two, twos = await fill_room(stack, chat, "two", 40)
        bob, bobs = await open_member(stack, chat, "bob", room="small")
        await asyncio.sleep(0.2)  # bob's tick is over too: none pending anywhere

        await open_member(stack, chat, "one-late", room="one")  # its tick: 0.4 s, all the budget
        # Read concurrently, so that a late read cannot pass the lower bound.
        two_took = asyncio.create_task(time_to_hear(stack, chat, "two", "two-late", two, twos))
        await asyncio.sleep(0.05)  # two's tick under way
        small_took = await time_to_hear(stack, chat, "small", "carol", bob, bobs)
        assert (await two_took) >= 0.6, f"two heard its join after {two_took.result():.2f} s"
        assert small_took < 0.3, f"the small room heard its join after {small_took:.2f} s"


def test_the_tick_grows_with_the_room_past_its_frame_budget_up_to_a_second() -> None:
    assert tick_seconds(0, 0.05, 5000) == 0.05
    assert tick_seconds(250, 0.05, 5000) == 0.05  # 5,000 frames a second: the budget
    assert tick_seconds(2000, 0.05, 5000) == 0.4
    assert tick_seconds(20_000, 0.05, 5000) == MAX_TICK_S == 1.0
    assert tick_seconds(20_000, 0.05, 1) == 1.0
    assert tick_seconds(10, 0.2, 100) == 0.2  # never shorter than the base tick


async def test_many_changes_at_once_reach_a_member_a_share_of_its_bound_per_tick(
    start_chat: StartChat,
) -> None:
    """150 members of another replica, with long names, join and then all leave at once: a
    local member hears them a share of its send-buffer bound per tick, not a frame of ~42 KB
    and one of ~21 KB in one write (which, while queued frames counted against the bound, cut
    a member that read everything). It is not cut, and its list ends right. A member welcomed
    while the joins are still going out hears of none of them again, and of every leave."""
    bound = 16384
    share = bound * TICK_SHARE_OF_BOUND  # 8 KiB a tick: about 19 of these users
    # Long ticks on A: B's joins pile up, and A tells them over several ticks.
    a = await start_chat(send_buffer_bytes=bound, presence_coalesce_ms=300)
    b = await start_chat(presence_coalesce_ms=50)
    cuts = REGISTRY.get_sample_value("chat_slow_consumers_total", {"reason": "buffer"})
    async with AsyncExitStack() as stack:
        alice, seen = await open_member(stack, a, "alice")
        crowd = {f"b{i:03}": f"{i:03} " + "n" * 400 for i in range(150)}
        crowd_bytes = sum(len(User(sub, name).encoded) + 1 for sub, name in crowd.items())
        async with AsyncExitStack() as on_b:
            joined = await asyncio.gather(*(on_b.enter_async_context(b.join("storm", sub, name))
                                            for sub, name in crowd.items()))  # fmt: skip
            keep_reading(on_b, joined)
            # Carol is welcomed while A still has joins to tell Alice, past this tick's share.
            await until(lambda: len(a.servers.relay.members("storm")) == 151, "B's joins on A")
            pending = a.servers.relay.presence._ticks["storm"].events
            assert sum(len(u.encoded) + 1 for _, u, _ in pending) > share, "no split under way"
            carol, carols = await open_member(stack, a, "carol")
            everyone = {"alice": "Name alice", "carol": "Name carol"} | crowd
            assert carols.members == everyone
            await seen.follow(alice, lambda s: s.members == everyone)
            await asyncio.gather(*(ws.close() for ws in joined))  # all leave at once
            await seen.follow(alice, lambda s: s.members == {"alice": "Name alice",
                                                             "carol": "Name carol"})  # fmt: skip
        # Carol heard the leaves and nothing else: no join she had from her welcome.
        await carols.follow(carol, lambda s: s.members == {"alice": "Name alice",
                                                           "carol": "Name carol"})  # fmt: skip
        await carols.settle(carol)
        assert carols.joins == 0, carols.joins
        assert carols.members == {"alice": "Name alice", "carol": "Name carol"}
    assert seen.largest <= share + 100, seen.largest  # + the frame's own keys
    assert seen.frames >= 2 * crowd_bytes / share, seen.frames
    assert REGISTRY.get_sample_value("chat_slow_consumers_total", {"reason": "buffer"}) == cuts


def test_a_tick_over_its_share_goes_on_in_the_next_from_where_it_was_cut() -> None:
    """What the members from before the tick hear now, what waits for the next tick, and what
    they will know of its users by then."""
    users = [User(f"u{i}", "N" * 40) for i in range(5)]
    size = len(users[0].encoded) + 1  # each user's bytes in a frame, with the comma
    loop = asyncio.new_event_loop()
    try:
        tick = _Tick(loop.call_later(60, lambda: None), 0.0)
    finally:
        loop.close()
    tick.before = {u.id: None for u in users}
    tick.events = [(u.id, u, True) for u in users] + [("u0", users[0], False)]
    assert tick.split(10_000) is None and len(tick.events) == 6  # all fit: nothing waits
    assert tick.split(1) is not None and len(tick.events) == 1  # at least one goes
    tick.events = [(u.id, u, True) for u in users] + [("u0", users[0], False)]
    rest, before = tick.split(2 * size) or ([], {})
    assert tick.events == [("u0", users[0], True), ("u1", users[1], True)]
    assert rest == [(u.id, u, True) for u in users[2:]] + [("u0", users[0], False)]
    # After this tick the members know u0 is in; u2..u4 are still absent to them.
    assert before == {"u2": None, "u3": None, "u4": None, "u0": users[0]}


def test_a_big_batch_is_split_into_bounded_frames() -> None:
    said = [(True, User(f"u{i}", f"N{i}")) for i in range(230)]
    said += [(False, User(f"x{i}", "X")) for i in range(20)]
    out = [json.loads(f) for f in frames(said)]
    assert [len(f["joined"]) + len(f["left"]) for f in out] == [100, 100, 50]
    assert MAX_USERS_PER_FRAME == 100
    assert sum(len(f["left"]) for f in out) == 20
    assert all(f["type"] == wire.FRAME_PRESENCE for f in out)
    # Even at the longest names (50 characters of 4 bytes), a frame stays near 25 KiB.
    assert len(protocol.presence([User("u" * 36, "\U0001f600" * 50)] * 100, []).encode()) < 26_000


def test_each_socket_hears_the_net_change_since_what_it_was_shown() -> None:
    bob, robert, cy = User("bob", "Bob"), User("bob", "Robert"), User("cy", "Cy")
    loop = asyncio.new_event_loop()
    try:
        tick = _Tick(loop.call_later(60, lambda: None), 0.0)
    finally:
        loop.close()
    # Bob was here: he leaves, Cy joins, Bob comes back renamed, Cy leaves.
    tick.before = {"bob": bob, "cy": None}
    tick.events = [("bob", bob, False), ("cy", cy, True), ("bob", robert, True),
                   ("cy", cy, False)]  # fmt: skip
    assert tick.since(0) == [(True, robert)]  # the rename; Cy came and went
    assert tick.since(1) == [(True, robert)]  # shown without Bob, Cy never shown
    assert tick.since(2) == [(True, robert), (False, cy)]  # shown with Cy, without Bob
    assert tick.since(3) == [(False, cy)]
    assert tick.since(4) == []
    # A leave and a join of the same name cancel out for those who knew him.
    tick.events = [("bob", bob, False), ("bob", bob, True)]
    assert tick.since(0) == [] and tick.since(1) == [(True, bob)]
