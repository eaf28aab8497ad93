"""Anonymity played as an attacker: someone who copies the database files (PostgreSQL's system
columns, heap order and files on disk; SQLite's `-wal`, commit by commit), reads the logs, and
compares every published result, while and after people answer through Slack."""

from __future__ import annotations

import asyncio
import itertools
import logging
import shutil
import sqlite3
import struct
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bot.config import parse_organisation_text
from handlers import dashboard, directory, inbound, pulse, setup, strategy
from handlers.context import Context
from handlers.signin import Viewer
from storage.database import Database
from storage.models import Outbox, PulseAnswer, PulseBallot, PulseRun, Question, SealedConcern, metadata
from tests import slack_fake
from tests.fakes import Clock, configured_logging, rows
from tests.slack_world import World, run
from tests.teams_fake import User
from tests.teams_world import teams_world
from tests.test_slack import DECISION

REPS = [f"U0REP0000{i:02d}" for i in range(10)]
ADMIN, LEADER = "U0ADMIN0001", "U0LEAD00001"
NAMES = {user: f"Rep Number{i}" for i, user in enumerate(REPS)}


def organisation() -> str:
    people: dict[str, Any] = {f"r{i}": {"name": NAMES[u], "slack": u} for i, u in enumerate(REPS)}
    people |= {
        "admin": {"name": "Ada Admin", "slack": ADMIN},
        "lead": {"name": "Lea Leader", "slack": LEADER},
    }
    return yaml.safe_dump(
        {
            "organisation": {"name": "Attack Co", "timezone": "Europe/Berlin"},
            "people": people,
            "roles": {"rep": [f"r{i}" for i in range(10)], "admin": ["admin"], "leader": ["lead"]},
            "audiences": {
                "sales": {"targets": ["slack:C0SALES0001"], "members": [f"r{i}" for i in range(10)]}
            },
            "surveys": {
                "alignment": {
                    "title": "Alignment pulse",
                    "audiences": ["sales"],
                    "schedule": "0 10 * * TUE",
                    "open_for": "3d",
                    "min_group_size": 5,
                    "min_group_size_comments": 5,
                    "questions": [
                        {"id": "why", "text": "I understand why.", "type": "agree-5"},
                        {"id": "nps", "text": "Would you recommend it?", "type": "scale-10"},
                        {"id": "else", "text": "Anything else?", "type": "text", "optional": True},
                    ],
                }
            },
        },
        sort_keys=False,
    )


@pytest.fixture
def actx(db: Database, clock: Clock) -> Context:
    ctx = Context(db=db, org=parse_organisation_text(organisation()), clock=clock)
    setup.apply(ctx)
    return ctx


def marker(i: int, run_tag: str) -> str:
    """A comment nobody else writes, to look for in the files."""
    return f"cmt{run_tag}x{i}"


async def answer(world: World, i: int, run_tag: str, opened: int) -> None:
    status, _ = await world.press("pulse.answer", "1", REPS[i])
    assert status == 200
    view = await world.opened(opened)
    await world.submit(view, REPS[i], {"why": str(1 + i % 5), "nps": str(i), "else": marker(i, run_tag)})
    await world.settled()


async def results_text(world: World) -> str:
    await world.command("pulse", "results 1", LEADER)
    await world.settled()
    return str(world.fake.called("response_url")[-1])


# --- PostgreSQL: xmin, heap order, the files on disk -------------------------------------------


def _pg(ctx: Context, sql: str) -> list[Any]:
    with ctx.db.engine.connect() as connection:
        return list(connection.execute(text(sql)))


def _files_of(ctx: Context) -> Iterator[Path]:
    """Every file of this database and the server's write-ahead log, as a thief would copy them."""
    with ctx.db.engine.connect() as connection:
        connection.execute(text("CHECKPOINT"))
        data = Path(connection.execute(text("SHOW data_directory")).scalar_one())
        oid = connection.execute(
            text("SELECT oid FROM pg_database WHERE datname = current_database()")
        ).scalar_one()
    if not (data / "base").exists():
        pytest.skip("the PostgreSQL server's files are not on this machine")
    for folder in (data / "base" / str(oid), data / "pg_wal"):
        yield from (p for p in folder.iterdir() if p.is_file())


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_on_postgresql_neither_xmin_nor_heap_order_nor_the_files_tie_an_answer_to_its_author(
    actx: Context,
) -> None:
    tag = uuid.uuid4().hex[:8]

    async def scenario(world: World) -> None:
        await world.command("pulse", "run alignment", ADMIN)
        await world.settled()
        for i in range(10):
            await answer(world, i, tag, opened=i + 1)

        # While the run is open: the query finds nothing; the ballots it would find
        # instead hold nothing readable, all of one length; and no file of the database, nor
        # its write-ahead log, holds any answer's words.
        linked = """
            SELECT p.name, a.* FROM pulseanswer a
            JOIN pulseinvitation i ON i.run_id = a.run_id AND i.xmin = a.xmin
            JOIN person p ON p.id = i.person_id ORDER BY a.ctid"""
        assert _pg(actx, linked) == []
        ballots = _pg(
            actx,
            """SELECT p.name, b.sealed FROM pulseballot b
               JOIN pulseinvitation i ON i.xmin = b.xmin JOIN person p ON p.id = i.person_id""",
        )
        assert len(ballots) == 10 and len({len(bytes(b.sealed)) for b in ballots}) == 1
        # Every table a transaction that answered wrote to: only the invitation and its ballot.
        answering = {r[0] for r in _pg(actx, "SELECT xmin::text FROM pulseinvitation WHERE answered")}
        touched = set()
        for table in metadata.sorted_tables:
            found = _pg(actx, f'SELECT xmin::text FROM "{table.name}"')
            if any(r[0] in answering for r in found):
                touched.add(table.name)
        assert touched == {"pulseinvitation", "pulseballot"}
        needles = [marker(i, tag).encode() for i in range(10)]
        for path in _files_of(actx):
            content = path.read_bytes()
            assert not [n for n in needles if n in content], path

        await world.command("pulse", "close 1", ADMIN)
        await world.settled()

    run(actx, scenario)

    # Closed: the answers are new rows of one transaction that marked nobody, in an order that
    # is not the answering order; the ballots are gone.
    assert _pg(actx, "SELECT count(*) FROM pulseballot")[0][0] == 0
    written = {r[0] for r in _pg(actx, "SELECT xmin::text FROM pulseanswer")}
    invitations = {r[0] for r in _pg(actx, "SELECT xmin::text FROM pulseinvitation")}
    assert len(written) == 1 and not written & invitations
    heap = [r[0] for r in _pg(actx, "SELECT number FROM pulseanswer WHERE question = 'nps' ORDER BY ctid")]
    assert sorted(heap) == list(range(10))
    # A shuffle of ten, so this fails by chance once in 1.8 million runs.
    assert heap not in (list(range(10)), list(reversed(range(10))))
    assert {r[0] for r in _pg(actx, "SELECT text FROM pulseanswer WHERE question = 'else'")} == {
        marker(i, tag) for i in range(10)
    }


# --- SQLite: the write-ahead log, commit by commit ---------------------------------------------


def _commits(database: Path, wal: Path) -> Iterator[Path]:
    """The database as it stood after each commit in a copy of its `-wal`, one file each."""
    log_bytes = wal.read_bytes()
    magic, _, page_size, _, salt1, salt2 = struct.unpack(">IIIIII", log_bytes[:24])
    assert magic in (0x377F0682, 0x377F0683)
    image = bytearray(database.read_bytes())
    offset, n = 32, 0
    while offset + 24 + page_size <= len(log_bytes):
        page, size_after, s1, s2 = struct.unpack(">IIII", log_bytes[offset : offset + 16])
        if (s1, s2) != (salt1, salt2):
            break  # frames of an earlier generation of the log
        frame = log_bytes[offset + 24 : offset + 24 + page_size]
        start = (page - 1) * page_size
        if len(image) < start + page_size:
            image.extend(b"\0" * (start + page_size - len(image)))
        image[start : start + page_size] = frame
        offset += 24 + page_size
        if size_after:  # a commit frame: the database is whole again
            image = image[: size_after * page_size]
            n += 1
            state = database.with_name(f"commit-{n:04d}.db")
            # Offline, without a log: a rollback-journal file of that content.
            state.write_bytes(bytes(image[:18]) + b"\x01\x01" + bytes(image[20:]))
            yield state


def _state(path: Path) -> tuple[set[int], int, set[str]]:
    with sqlite3.connect(path) as connection:
        answered = {r[0] for r in connection.execute("SELECT person_id FROM pulseinvitation WHERE answered")}
        answers = connection.execute("SELECT count(*) FROM pulseanswer").fetchone()[0]
        texts = {r[0] for r in connection.execute("SELECT text FROM pulseanswer WHERE text IS NOT NULL")}
    return answered, answers, texts


def _copy(url: str, into: Path) -> tuple[Path, Path]:
    """What someone copying the files of a running Touchline takes: the database and its log."""
    database = Path(make_url(url).database or "")
    into.mkdir(exist_ok=True)
    shutil.copy(database, into / "touchline.db")
    shutil.copy(database.with_name(database.name + "-wal"), into / "touchline.db-wal")
    return into / "touchline.db", into / "touchline.db-wal"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_on_sqlite_no_commit_in_the_wal_ties_an_answer_to_its_author(
    actx: Context, database_url: str, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    copies: list[tuple[Path, Path]] = []

    async def scenario(world: World) -> None:
        await world.command("pulse", "run alignment", ADMIN)
        await world.settled()
        for i in range(6):
            await answer(world, i, tag, opened=i + 1)
        copies.append(_copy(database_url, tmp_path / "mid-run"))
        await world.command("pulse", "close 1", ADMIN)
        await world.settled()
        copies.append(_copy(database_url, tmp_path / "closed"))

    run(actx, scenario)

    needles = [marker(i, tag).encode() for i in range(6)]
    # Mid-run, every page of every commit: no answer's words anywhere.
    database, wal = copies[0]
    assert not [n for n in needles if n in wal.read_bytes() or n in database.read_bytes()]
    # After closing, replayed one commit at a time: the commit in which someone is marked as
    # having answered adds no readable answer, and the one that adds answers marks nobody.
    states = [_state(p) for p in _commits(*copies[1])]
    assert len(states) > 6
    for (answered, answers, _), (answered_next, answers_next, _) in itertools.pairwise(states):
        assert not (answered_next != answered and answers_next != answers)
    assert states[-1][2] == {marker(i, tag) for i in range(6)} and len(states[-1][0]) == 6


# --- the published results, compared ----------------------------------------------------------


def test_results_before_and_after_one_more_answer_differ_only_in_the_count(actx: Context) -> None:
    tag = uuid.uuid4().hex[:8]

    async def scenario(world: World) -> None:
        await world.command("pulse", "run alignment", ADMIN)
        await world.settled()
        for i in range(5):
            await answer(world, i, tag, opened=i + 1)
        before = await results_text(world)
        await answer(world, 5, tag, opened=6)
        after = await results_text(world)
        assert before.replace("5 of 10 (50%)", "6 of 10 (60%)") == after
        assert "mean" not in after and marker(0, tag) not in after and "when the run closes" in after
        await world.command("pulse", "close 1", ADMIN)
        await world.settled()
        closed = await results_text(world)
        assert "mean" in closed and marker(5, tag) in closed

    run(actx, scenario)


# --- logs and the outbox around an anonymous concern and an answer ------------------------------


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.getMessage()}")


@pytest.fixture
def debug_log() -> Iterator[Recorder]:
    """Touchline's own logging set-up at LOG_LEVEL=DEBUG, with every line kept."""
    with configured_logging("DEBUG") as root:
        recorder = Recorder()
        root.addHandler(recorder)
        yield recorder


def test_an_anonymous_concern_leaves_no_sender_and_no_moment_in_the_logs_or_the_outbox(
    actx: Context, clock: Clock, debug_log: Recorder
) -> None:
    secret = f"concern-{uuid.uuid4().hex[:8]}"
    sender = REPS[3]

    async def scenario(world: World) -> None:
        await world.command("strategy", "", LEADER)
        view = await world.opened(1)
        await world.submit(view, LEADER, {**DECISION, "audiences": ["sales"]})
        await world.settled()
        await world.deliver()
        outbox_before = len(rows(actx.db, Outbox))
        debug_log.lines.clear()

        await world.press("strategy.concern", "1", sender)
        form = await world.opened(2)
        await world.submit(form, sender, {"text": secret, "anonymous": True})
        await world.settled()
        thanks = str(world.fake.called("chat.postEphemeral")[-1])
        assert "anonymously" in thanks and "08:00" in thanks
        # Nothing of it in the outbox, readable or not, and no question yet.
        assert len(rows(actx.db, Outbox)) == outbox_before and rows(actx.db, Question) == []
        [box] = rows(actx.db, SealedConcern)
        assert secret.encode() not in box.sealed
        # Not the sender, their name, nor the words, at DEBUG: the chat SDKs log every call.
        logged = "\n".join(debug_log.lines)
        assert sender not in logged and NAMES[sender] not in logged and secret not in logged

        clock.now = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)  # the next 08:00 in Berlin
        assert strategy.deliver_concerns(actx) == 1
        await world.deliver()
        [to_author] = [o for o in rows(actx.db, Outbox) if o.subject.startswith("question:")]
        # The message's times are the round's, to the second: nothing from the moment it was sent.
        assert to_author.created_at == to_author.due_at == clock.now
        assert secret in str(world.fake.called("chat.postMessage")[-1])
        assert sender not in str(to_author.card) and NAMES[sender] not in str(to_author.card)

    run(actx, scenario)


def test_answering_a_pulse_leaves_nobody_in_the_logs(actx: Context, debug_log: Recorder) -> None:
    tag = uuid.uuid4().hex[:8]

    async def scenario(world: World) -> None:
        await world.command("pulse", "run alignment", ADMIN)
        await world.settled()
        debug_log.lines.clear()
        await answer(world, 2, tag, opened=1)
        assert "sealed" in str(world.fake.called("chat.postEphemeral")[-1])
        logged = "\n".join(debug_log.lines)
        assert REPS[2] not in logged and NAMES[REPS[2]] not in logged and marker(2, tag) not in logged
        assert rows(actx.db, PulseAnswer) == [] and len(rows(actx.db, PulseBallot)) == 1

    run(actx, scenario)


TEAM = "19:anonymity000000000000000000000@thread.tacv2"
TEAMS_REPS = [User(f"0d1e4c6a-{i:04d}-4b9e-9e9f-73e0c02bf4ea", f"Teams Rep{i}") for i in range(3)]
TEAMS_ADMIN = User("0d1e4c6a-9999-4b9e-9e9f-73e0c02bf4ea", "Ada Admin")


def test_answering_a_pulse_in_teams_leaves_a_sealed_ballot_and_nobody_in_the_logs(
    db: Database, clock: Clock, debug_log: Recorder
) -> None:
    spec = yaml.safe_load(organisation())
    spec["people"] = {f"t{i}": {"name": u.name, "teams": u.aad} for i, u in enumerate(TEAMS_REPS)}
    spec["people"]["admin"] = {"name": TEAMS_ADMIN.name, "teams": TEAMS_ADMIN.aad}
    spec["roles"] = {"rep": [f"t{i}" for i in range(3)], "admin": ["admin"]}
    spec["audiences"] = {"sales": {"targets": [f"teams:{TEAM}"], "members": [f"t{i}" for i in range(3)]}}
    ctx = Context(db=db, org=parse_organisation_text(yaml.safe_dump(spec)), clock=clock)
    setup.apply(ctx)
    tag = uuid.uuid4().hex[:8]
    rep = TEAMS_REPS[1]

    async def main() -> None:
        async with teams_world(ctx) as world:
            await world.install(TEAMS_ADMIN, TEAM, [TEAMS_ADMIN, *TEAMS_REPS])
            await world.say(TEAMS_ADMIN, "pulse run alignment")
            await world.deliver()
            debug_log.lines.clear()
            await world.press(rep, world.latest(rep.personal), 1)
            form = world.latest(rep.personal, with_inputs=True)
            await world.submit(rep, form, {"why": "4", "nps": "7", "else": marker(1, tag)})
            assert "sealed" in world.texts(rep.personal)

    asyncio.run(main())
    logged = "\n".join(debug_log.lines)
    assert rep.aad not in logged and rep.name not in logged and marker(1, tag) not in logged
    [ballot] = rows(db, PulseBallot)
    assert marker(1, tag).encode() not in ballot.sealed and rows(db, PulseAnswer) == []


def test_a_ballot_cannot_be_opened_without_the_key_nor_moved_to_another_run(actx: Context) -> None:
    tag = uuid.uuid4().hex[:8]

    async def scenario(world: World) -> None:
        await world.command("pulse", "run alignment", ADMIN)
        await world.settled()
        await answer(world, 0, tag, opened=1)

    run(actx, scenario)
    [ballot] = rows(actx.db, PulseBallot)
    assert actx.seal.open(ballot.sealed, context="pulse:1")["answers"]["else"] == marker(0, tag)
    with pytest.raises(Exception, match="another key"):
        actx.seal.open(ballot.sealed, context="pulse:2")
    other = Context(db=actx.db, org=actx.org)  # another key
    with pytest.raises(Exception, match="another key"):
        other.seal.open(ballot.sealed, context="pulse:1")


def test_the_key_comes_from_the_environment_a_platform_secret_or_a_file_beside_the_database(
    tmp_path: Path,
) -> None:
    from pydantic import SecretStr

    from bot.bootstrap import key_path, seal
    from bot.config import Environment

    url = f"sqlite:///{tmp_path / 'touchline.db'}"
    local = seal(Environment(database_url=url))
    key = tmp_path / "touchline.key"
    assert key_path(url) == key and key.stat().st_mode & 0o077 == 0
    assert seal(Environment(database_url=url)).key_id == local.key_id  # the same key next start
    chosen = Environment(database_url=url, touchline_secret_key=SecretStr("k" * 40))
    assert seal(chosen).key_id == seal(chosen).key_id != local.key_id
    derived = Environment(database_url=url, slack_signing_secret=SecretStr("s" * 32))
    assert seal(derived).key_id == seal(derived).key_id != local.key_id
    with pytest.raises(ValueError, match="32"):
        Environment(touchline_secret_key=SecretStr("short"))


# --- what the attacker pass found: one person alone in a (side, audience) cell ----------------


def crosstab_organisation() -> str:
    """Every side and every audience has five or more, but AMER has one seller only: Alex."""
    people = {f"e_s{i}": {"name": f"EMEA seller {i}"} for i in range(5)}
    people |= {f"e_m{i}": {"name": f"EMEA marketer {i}"} for i in range(5)}
    people |= {"a_s0": {"name": "Alex Alone"}} | {f"a_m{i}": {"name": f"AMER marketer {i}"} for i in range(4)}
    people |= {"root": {"name": "Ada Admin"}}
    return yaml.safe_dump(
        {
            "organisation": {"name": "Crosstab Co", "timezone": "Europe/Berlin"},
            "people": people,
            "roles": {
                "rep": [k for k in people if "_s" in k],
                "marketer": [k for k in people if "_m" in k],
                "admin": ["root"],
            },
            "audiences": {
                region: {
                    "targets": [f"console:#{region}"],
                    "members": [k for k in people if k[0] == region[0]],
                }
                for region in ("emea", "amer")
            },
            "surveys": {
                "alignment": {
                    "title": "Pulse",
                    "audiences": ["emea", "amer"],
                    "schedule": "0 10 * * TUE",
                    "open_for": "3d",
                    "min_group_size": 5,
                    "questions": [{"id": "why", "text": "I understand why.", "type": "agree-5"}],
                }
            },
        }
    )


def test_no_stored_row_nor_dashboard_filter_singles_out_one_person_in_a_side_and_audience(
    db: Database, clock: Clock
) -> None:
    ctx = Context(db=db, org=parse_organisation_text(crosstab_organisation()), clock=clock)
    setup.apply(ctx)
    who = {key: directory.console_actor(ctx, key) for key in ctx.org.people}
    assert "open" in inbound.command(ctx, who["root"], "pulse", "run alignment").text
    for key in who:
        if key != "root":
            value = "1" if key == "a_s0" else "4" if "_s" in key else "3"
            assert "Thank" in inbound.submit(ctx, who[key], pulse.FORM_ID, {"run": "1", "why": value}).text
    assert "closed" in inbound.command(ctx, who["root"], "pulse", "close 1").text
    stored = rows(db, PulseAnswer)
    cells = Counter((a.side, a.audience) for a in stored if a.side and a.audience)
    assert all(n >= 5 for n in cells.values()), cells  # Alex's ("sales", "amer") is not a row
    assert {a.side for a in stored} == {"sales", "marketing"}  # the sides, all large, are kept
    viewer = Viewer(who["root"].person_id, "Ada Admin", who["root"].roles)
    with db.session() as session:
        for audience in (None, "emea", "amer"):
            board = dashboard.build(session, ctx.org, viewer, now=ctx.now(), audience=audience)
            table = board.table("pulse-questions")
            assert table is not None
            [(*_, sales, marketing, _distribution)] = table.rows
            if audience is None:
                assert (sales, marketing) == (pytest.approx(3.5), pytest.approx(3.0))
            else:  # beside the unfiltered sides, a filtered side would give Alex's 1 away
                assert sales is None and marketing is None


def test_slack_failing_at_the_moment_of_an_answer_or_a_concern_logs_nobody(
    actx: Context, debug_log: Recorder
) -> None:
    async def scenario(world: World) -> None:
        await world.command("pulse", "run alignment", ADMIN)
        await world.settled()
        # The thank-you to a person in their direct messages is refused; their profile lookup too.
        world.fake.errors["chat.postMessage"] = ["ratelimited"]
        world.fake.errors["users.info"] = ["ratelimited"]
        assert world.touchline.slack is not None
        world.touchline.slack.people._profiles.clear()  # their profile's time in the cache ran out
        debug_log.lines.clear()
        await world.send(
            slack_fake.button("pulse.answer", "1", REPS[2], fake=world.fake, channel="D0REP000002")
        )
        view = await world.opened(1)
        await world.submit(view, REPS[2], {"why": "1", "nps": "0", "else": "hate it"})
        await world.settled()
        assert len(rows(actx.db, PulseBallot)) == 1
        assert [line for line in debug_log.lines if "ratelimited" in line]  # the failures were logged
        assert not [line for line in debug_log.lines if REPS[2] in line or NAMES[REPS[2]] in line]

    run(actx, scenario)


def test_a_lone_surrogate_in_a_comment_is_refused_with_a_message_not_a_failure(actx: Context) -> None:
    who = directory.identify(actx, "slack", REPS[0])
    admin = directory.identify(actx, "slack", ADMIN)
    assert "open" in inbound.command(actx, admin, "pulse", "run alignment").text
    reply = inbound.submit(actx, who, pulse.FORM_ID, {"run": "1", "why": "3", "nps": "5", "else": "a\ud800b"})
    assert "broken character" in reply.text and rows(actx.db, PulseBallot) == []
    assert "Thank you" in inbound.submit(actx, who, pulse.FORM_ID, {"run": "1", "why": "3", "nps": "5"}).text


def test_ballots_sealed_under_a_key_since_changed_are_counted_as_answered_and_kept_out_of_results(
    actx: Context, caplog: pytest.LogCaptureFixture
) -> None:
    admin = directory.identify(actx, "slack", ADMIN)
    assert "open" in inbound.command(actx, admin, "pulse", "run alignment").text
    for user in REPS[:6]:
        who = directory.identify(actx, "slack", user)
        assert "Thank" in inbound.submit(actx, who, pulse.FORM_ID, {"run": "1", "why": "4", "nps": "7"}).text
    rotated = Context(db=actx.db, org=actx.org, clock=actx.clock)  # TOUCHLINE_SECRET_KEY changed
    assert "closed" in inbound.command(rotated, admin, "pulse", "close 1").text
    assert rows(actx.db, PulseBallot) == [] and rows(actx.db, PulseAnswer) == []
    with actx.db.session() as session:
        result = pulse.results(session, actx.org, session.get(PulseRun, 1))  # type: ignore[arg-type]
    assert result.answered == 6 and not any(q.distribution for q in result.questions)
    [warning] = [r.getMessage() for r in caplog.records if "another key" in r.getMessage()]
    assert "6 of 6" in warning and not [user for user in REPS if user in warning]
