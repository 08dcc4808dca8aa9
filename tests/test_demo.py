"""The parts of ``serfcast demo``: drawing, finding serf, checking options, repairing.

The timeline is plain functions of the arrivals, so its pictures are checked
exactly; finding serf uses fake executables in a temporary folder; the repair
runs real members on 127.0.0.1 (the demo's own event, gossip and push/pull).
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest
import trio

from serfcast.demo.agents import SerfBinary, find_serf
from serfcast.demo.options import DemoOptions
from serfcast.demo.pool import Member, bind_members
from serfcast.demo.ports import PortDraw
from serfcast.demo.screen import Screen
from serfcast.demo.spread import Spread
from serfcast.demo.timeline import Row, Style, axis_scale, bar, format_ms, render
from serfcast.demo.timeline import summary as summarize
from serfcast.engine.config import profile
from serfcast.errors import LocalProtocolError

PLAIN = Style(width=40, color=False)
ROWS = [
    Row("n01", "serfcast", 10001, 0.1),
    Row("n02", "serfcast", 10002, 0.0002, sender=True),
    Row("s01", "serf 0.10.1", 10003, 0.2),
]


# ----------------------------------------------------------------------------
# Bars and pictures


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0.5, "█" * 20),
        (0.5 + 1 / 320, "█" * 20 + "▏"),  # one eighth of a column more
        (0.5 + 7 / 320, "█" * 20 + "▉"),
        (0.0, "▏"),  # never empty
        (5.0, "█" * 40),  # never past the axis
    ],
)
def test_bars_are_placed_to_an_eighth_of_a_column(
    seconds: float, expected: str
) -> None:
    assert bar(seconds, 1.0, 40) == expected


def test_the_final_picture_has_a_row_each_and_an_axis_of_whole_intervals() -> None:
    lines = render(ROWS, 0.25, 0.1, PLAIN, final=True)
    assert lines[0] == "  n01  serfcast     :10001 │" + "█" * 20 + " 100 ms"
    assert lines[1] == "  n02  serfcast     :10002 │▏ fired here"
    assert lines[2] == "  s01  serf 0.10.1  :10003 │" + "█" * 40 + " 200 ms"
    assert lines[3] == " " * 27 + "└" + "─" * 19 + "┴" + "─" * 19 + "┴"
    assert lines[4].split() == ["0", "100", "200", "ms"]
    assert len(lines) == 5


def test_members_still_waiting_grow_with_time_and_then_missed() -> None:
    rows = [*ROWS[:2], Row("n03", "serfcast", 10004, None)]
    live = render(rows, 0.2, 0.1, PLAIN, final=False)
    # Live, the axis starts four intervals long: 0.2 s is half of it.
    assert live[2].endswith("│" + "░" * 20 + " …")
    final = render(rows, 0.2, 0.1, PLAIN, final=True)
    assert final[2].endswith("│" + "░" * 40 + " missed")


def test_colour_only_when_asked() -> None:
    plain = "\n".join(render(ROWS, 0.3, 0.1, PLAIN, final=True))
    coloured = "\n".join(render(ROWS, 0.3, 0.1, Style(40, color=True), final=True))
    assert "\x1b[" not in plain
    assert "\x1b[32m" in coloured  # serfcast members' bars are green
    assert "\x1b[33m" in coloured  # serf agents' are yellow


def test_a_repaired_member_is_marked() -> None:
    rows = [*ROWS[:2], Row("n03", "serfcast", 10004, 0.6, repaired=True)]
    lines = render(rows, 0.6, 0.1, PLAIN, final=True)
    assert lines[2].endswith(" 600 ms push/pull")


def test_the_axis_grows_by_doubling_live_and_fits_at_the_end() -> None:
    assert axis_scale(0.05, 0.1, live=True) == pytest.approx(0.4)
    assert axis_scale(0.5, 0.1, live=True) == pytest.approx(0.8)
    assert axis_scale(0.25, 0.1, live=False) == pytest.approx(0.3)
    assert axis_scale(0.0, 0.1, live=False) == pytest.approx(0.1)


def test_crowded_ticks_are_labelled_less_often() -> None:
    lines = render([Row("n01", "serfcast", 1, 3.2)], 3.2, 0.1, PLAIN, final=True)
    labels = lines[-1].split()
    assert labels[0] == "0" and labels[-2:] == ["3200", "ms"]
    assert len(labels) < 34  # not all 33 ticks get a number


def test_times_read_naturally() -> None:
    assert [format_ms(t) for t in (0.0032, 0.041, 0.999, 1.25)] == [
        "3.2 ms",
        "41 ms",
        "999 ms",
        "1.25 s",
    ]


def test_the_summary_counts_gossip_intervals() -> None:
    assert summarize(ROWS, 0.1, "local") == [
        "all 3 members had the event within 200 ms: "
        "2.0 gossip intervals of 100 ms (profile local)"
    ]


def test_the_summary_says_who_needed_a_push_pull_and_who_missed() -> None:
    rows = [*ROWS, Row("n03", "serfcast", 10004, 0.7, repaired=True)]
    first, second = summarize(rows, 0.1, "local")
    assert first.startswith("gossip brought the event to 3 of 4 members within 200")
    assert second == (
        "n03 missed the gossip and got it by push/pull: "
        "all 4 members had the event within 700 ms"
    )
    rows = [*ROWS, Row("n03", "serfcast", 10004, None)]
    assert summarize(rows, 0.1, "lan") == ["3 of 4 members had the event; missed: n03"]


# ----------------------------------------------------------------------------
# The screen


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_the_picture_redrawn_in_place(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TERM", "xterm")
    out = _Terminal()
    screen = Screen(out)
    screen.draw(["a", "b", "c"])
    screen.draw(["A", "B", "C"])
    screen.restore()
    text = out.getvalue()
    assert text.startswith("\x1b[?25l")  # cursor hidden while drawing
    assert "\x1b[3A\r\x1b[2KA\n\x1b[2KB\n\x1b[2KC\n" in text
    assert text.endswith("\x1b[?25h")  # and shown again


def test_anything_else_gets_plain_lines() -> None:
    out = io.StringIO()
    screen = Screen(out)
    screen.draw(["a", "b"])
    screen.say("done")
    screen.restore()
    assert out.getvalue() == "a\nb\ndone\n"
    assert screen.style(ROWS) == Style(48, color=False)


# ----------------------------------------------------------------------------
# Finding serf and checking options


def _executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_serf_is_found_in_the_environment_first_then_the_cache(tmp_path: Path) -> None:
    named = _executable(tmp_path / "elsewhere" / "serf")
    cached = _executable(tmp_path / ".cache" / "serf" / "0.9.4" / "serf")
    _executable(tmp_path / ".cache" / "serf" / "0.10.1" / "serf")
    env = {"SERFCAST_SERF_0101": str(named), "PATH": ""}
    assert find_serf(env, tmp_path) == [
        SerfBinary(named, "0.10.1"),
        SerfBinary(cached, "0.9.4"),
    ]


def test_serf_on_path_is_the_last_resort(tmp_path: Path) -> None:
    on_path = _executable(tmp_path / "bin" / "serf")
    not_runnable = tmp_path / "nope" / "serf"
    not_runnable.parent.mkdir()
    not_runnable.write_text("")
    env = {"SERFCAST_SERF_094": str(not_runnable), "PATH": str(on_path.parent)}
    found = find_serf(env, tmp_path)
    assert found == [SerfBinary(on_path, None)]
    assert found[0].label == "serf"
    assert find_serf({"PATH": ""}, tmp_path) == []


def test_options_refuse_with_serf_without_serf(tmp_path: Path) -> None:
    with pytest.raises(LocalProtocolError, match="run scripts/fetch-serf"):
        DemoOptions.checked(
            nodes=3,
            profile="local",
            payload=None,
            with_serf=True,
            seed=None,
            env={"PATH": ""},
            cwd=tmp_path,
        )


def test_options_pick_a_seed_when_none_is_given() -> None:
    options = DemoOptions.checked(
        nodes=3, profile="local", payload="hi", with_serf=False, seed=None
    )
    assert options.seed > 0
    assert options.payload == b"hi"
    assert options.serf == ()


def test_the_same_seed_draws_the_same_ports() -> None:
    first = PortDraw(random.Random(5)).candidates()
    second = PortDraw(random.Random(5)).candidates()
    assert [next(first) for _ in range(5)] == [next(second) for _ in range(5)]


# ----------------------------------------------------------------------------
# The repair: a member the gossip missed gets the event by push/pull


async def test_a_member_the_gossip_missed_gets_the_event_by_push_pull() -> None:
    config = profile("local")
    rng = random.Random(3)
    event = ("serfcast-demo", b"hello")
    names = ["n01", "n02", "n03"]
    members = bind_members(names, config, event, PortDraw(rng), rng)
    sender, member, outsider = members
    async with trio.open_nursery() as nursery:
        for one in members:
            await nursery.start(one.run)
        member.join(sender.port)
        with trio.fail_after(10):
            await member.join_done.wait()
        # The outsider never joined, so no gossip can reach it: only the
        # push/pull the watch starts once the gossip is over.
        spread = Spread(members, [], sender, config)
        spread.fire()
        await spread.watch(Screen(io.StringIO()), timeout=10)
        rows = {row.name: row for row in spread.rows()}
        nursery.cancel_scope.cancel()
    assert rows["n01"].sender
    assert rows["n02"].arrival is not None and not rows["n02"].repaired
    assert rows["n03"].arrival is not None and rows["n03"].repaired
    assert outsider.arrival is not None
    assert all(_closed(one) for one in members)


def _closed(member: Member) -> bool:
    return member.closed.is_set() and member.sockets.udp.fileno() == -1
