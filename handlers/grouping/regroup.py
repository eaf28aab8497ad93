"""Regrouping: the themes of recent objections worked out again all together, weekly, before each
digest and after an import, so that what one objection at a time could not see is seen.

What a marketer placed stays where it is and teaches its theme, as do app.yaml's cue words and
example sentences. The other objections first join the taught theme they resemble most (enough:
its centre, or one of its examples or placed objections);
those that resemble none are clustered among themselves by average linkage, and each cluster
keeps the theme most of it was in, so that ids and names survive. Grouping by words is not
regrouped: it needs the embeddings.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import sqlalchemy as sa
from sqlalchemy import bindparam
from sqlmodel import Session, col

from handlers import matching, objections, themes
from handlers.context import Context
from handlers.grouping import semantic
from storage import audit
from storage.database import serialize
from storage.models import Objection, Theme

log = logging.getLogger(__name__)

WINDOW = timedelta(days=182)  # the objections regrouped: those of the last half year...
MOST = 5000  # ...at most this many, the latest
CLUSTERED = 2000  # untaught objections clustered at once (a float32 matrix of 16 MB)
# Chosen once on the first five objections of each theme of benchmarks' labelled set, with the
# shipped app.yaml (benchmarks/grouping_quality.py --tune); reported on the rest and on a second set.
JOINS = 0.35  # an objection joins a taught theme whose centre it resembles this much...
NEAR = 0.45  # ...or one of whose examples or placed objections it resembles this much
EXEMPLARS = 1000  # placed objections compared one by one, at most (the latest)
TOGETHER = 0.25  # untaught objections that resemble each other this much on average form a theme
ATTEMPTS = 3  # plans made again when the themes changed under one
ROUNDS = 30  # of joining and recentring, at most (it settles in fewer, as a rule)
NAME_WORDS = 3
KEPT_NAME = 6  # a found theme keeps its name while its words are among its most distinctive six


@dataclass
class Regrouped:
    """What a regrouping did."""

    considered: int = 0
    moved: int = 0
    new_themes: int = 0
    renamed: int = 0
    skipped: str = ""  # why nothing was regrouped

    def summary(self) -> str:
        if self.skipped:
            return f"not regrouped: {self.skipped}"
        return (
            f"regrouped {self.considered} objections: {self.moved} moved, "
            f"{self.new_themes} new themes, {self.renamed} renamed"
        )


@dataclass
class _Objection:
    id: int
    text: str
    theme_id: int
    confidential: bool
    fixed: bool  # placed by a marketer, or a cue word's: never moved
    placed: bool  # by a marketer (when read)
    about: str  # what its meaning is taken from: the text, a competitor's name said as "another vendor"
    stored: int  # the theme it was in when read


@dataclass
class _Plan:
    theme_of: dict[int, int] = field(default_factory=dict)  # objection id -> theme id, or -(cluster + 1)


def regroup(ctx: Context) -> Regrouped:
    """Regroup the recent objections; returns what changed."""
    if ctx.org.objections.grouping != "semantic":
        return Regrouped(skipped="objections are grouped by words (objections.grouping in app.yaml)")
    if not semantic.available():
        return Regrouped(skipped=f"the model could not load ({semantic.problem()})")
    now = ctx.now()
    for _ in range(ATTEMPTS):
        with ctx.db.read() as session:
            recent, taught, cued = _read(session, ctx, now)
        if not recent:
            return Regrouped()
        try:
            plan = _plan(recent, taught, cued)
        except semantic.SemanticUnavailable as unavailable:
            return Regrouped(skipped=f"the model could not load ({unavailable})")
        # The themes that gain or lose objections are rebuilt in the write transaction: what
        # that reads is encoded before it.
        moving = [o for o in recent if plan.theme_of[o.id] != o.stored]
        changing = {o.stored for o in moving} | {
            plan.theme_of[o.id] for o in moving if plan.theme_of[o.id] > 0
        }
        themes.prepare_rebuild(ctx, sorted(changing))
        try:
            with ctx.db.session() as session:
                done = _apply(session, ctx, recent, plan, now)
                session.commit()
        except _Stale:
            continue  # planned on themes that changed meanwhile: plan again (encoded by now: quick)
        log.info("themes: %s", done.summary())
        return done
    return Regrouped(skipped="the themes kept changing while it ran; the next regrouping will try again")


class _Stale(Exception):
    """An objection's theme changed between reading and writing (a marketer, another regrouping)."""


def _read(
    session: Session, ctx: Context, now: datetime
) -> tuple[list[_Objection], dict[int, list[str]], dict[str, int]]:
    """The recent objections, what app.yaml teaches each theme, and the themes cue words name."""
    listed = {
        row.key: (row.id, list(row.cues))
        for row in session.connection().execute(
            sa.select(col(Theme.id), col(Theme.key), col(Theme.cues)).where(
                col(Theme.key).is_not(None), col(Theme.merged_into_id).is_(None)
            )
        )
    }
    # Cue words in app.yaml's order, so that a tie goes to the theme listed first there.
    cues = {key: listed[key][1] for key in ctx.org.objections.themes if key in listed and listed[key][1]}
    rows = session.connection().execute(_RECENT, {"since": now - WINDOW, "most": MOST}).all()
    recent = []
    for row in rows:
        # Compared as it was when recorded: a competitor's name said as "another vendor".
        _, about, hint = objections.compared(row.text, row.competitor, ctx.org.objections.competitors)
        cued = matching.theme_of(f"{about} {hint}", cues) if cues else matching.OTHER
        recent.append(
            _Objection(
                row.id,
                row.text,
                row.theme_id,
                row.confidential,
                row.placed or cued in cues,
                row.placed,
                about,
                row.theme_id,
            )
        )
        if not row.placed and cued in cues:
            recent[-1].theme_id = listed[cued][0]
    taught: dict[int, list[str]] = defaultdict(list)
    for theme_id, sentence_lists in themes.taught_by(session, themes.examples_of(ctx)).items():
        for sentences in sentence_lists:
            taught[theme_id].extend(sentences)
    return recent, dict(taught), {key: listed[key][0] for key in cues}


_RECENT = (
    sa.select(
        col(Objection.id),
        col(Objection.text),
        col(Objection.theme_id),
        col(Objection.confidential),
        col(Objection.placed),
        col(Objection.competitor),
    )
    .where(col(Objection.created_at) >= bindparam("since"))
    .order_by(col(Objection.created_at).desc(), col(Objection.id).desc())
    .limit(bindparam("most"))
)


def _plan(recent: list[_Objection], taught: dict[int, list[str]], cued: dict[str, int]) -> _Plan:
    """Where each objection belongs: a theme id, or a new cluster (a negative number)."""
    vectors = semantic.vectors([o.about for o in recent])
    width = vectors.shape[1]
    # The taught themes' fixed part: app.yaml's examples, and the objections placed in them.
    fixed: dict[int, np.ndarray] = {}
    for theme_id, sentences in taught.items():
        fixed[theme_id] = semantic.vectors(sentences).sum(axis=0)
    for i, o in enumerate(recent):
        if o.fixed:
            fixed[o.theme_id] = fixed.get(o.theme_id, np.zeros(width, dtype=np.float32)) + vectors[i]
    plan = _Plan()
    free = [i for i, o in enumerate(recent) if not o.fixed]
    for o in recent:
        if o.fixed:
            plan.theme_of[o.id] = o.theme_id
    centres = list(fixed)
    # Each starts in the theme it is in, where that theme is taught: what fits stays.
    index = {theme_id: k for k, theme_id in enumerate(centres)}
    joined = np.array([index.get(recent[i].theme_id, -1) for i in free], dtype=int)
    if centres and free:
        base = np.vstack([fixed[t] for t in centres])
        own = vectors[free]
        near = _nearest_exemplars(own, centres, taught, recent, vectors)
        for _ in range(ROUNDS):
            total = base.copy()
            for k in range(len(centres)):
                members = joined == k
                if members.any():
                    total[k] += own[members].sum(axis=0)
            unit = total / np.maximum(np.linalg.norm(total, axis=1, keepdims=True), 1e-9)
            scores = np.maximum(own @ unit.T, near)
            best = scores.argmax(axis=1)
            now_joined = np.where(scores.max(axis=1) >= JOINS, best, -1)
            if (now_joined == joined).all():
                break
            joined = now_joined
    for position, k in enumerate(joined):
        if k >= 0:
            plan.theme_of[recent[free[position]].id] = centres[k]
    rest = [free[p] for p, k in enumerate(joined) if k < 0]
    clustered, left = rest[:CLUSTERED], rest[CLUSTERED:]
    for i in left:  # beyond what is clustered at once, an objection stays where it is
        plan.theme_of[recent[i].id] = recent[i].theme_id
    for cluster, members in enumerate(_clusters(vectors[clustered], TOGETHER)):
        for m in members:
            plan.theme_of[recent[clustered[m]].id] = -(cluster + 1)
    _keep_themes(plan, recent, set(centres) | set(cued.values()))
    return plan


def _nearest_exemplars(
    own: np.ndarray,
    centres: list[int],
    taught: dict[int, list[str]],
    recent: list[_Objection],
    vectors: np.ndarray,
) -> np.ndarray:
    """For each free objection and taught theme, how much it resembles the theme's likest example
    or placed objection, where that is at least NEAR (else 0): a paraphrase of one example, or of
    what a marketer placed, joins its theme even when the theme's centre is elsewhere."""
    index = {theme_id: k for k, theme_id in enumerate(centres)}
    chosen: list[np.ndarray] = []
    owners: list[int] = []
    for theme_id, sentences in taught.items():
        if theme_id in index and sentences:
            chosen.append(semantic.vectors(sentences))
            owners.extend([index[theme_id]] * len(sentences))
    placed = [i for i, o in enumerate(recent) if o.placed and o.theme_id in index][:EXEMPLARS]
    if placed:
        chosen.append(vectors[placed])
        owners.extend(index[recent[i].theme_id] for i in placed)
    near = np.zeros((len(own), len(centres)), dtype=np.float32)
    if not chosen:
        return near
    alike = own @ np.vstack(chosen).T
    owner = np.array(owners)
    for k in set(owners):
        best = alike[:, owner == k].max(axis=1)
        near[:, k] = np.where(best >= NEAR, best, 0.0)
    return near


def _clusters(vectors: np.ndarray, threshold: float) -> list[list[int]]:
    """Average-linkage clusters of unit `vectors`: the two clusters that resemble each other most
    on average are joined, until no two resemble each other `threshold` on average."""
    n = len(vectors)
    members = [[i] for i in range(n)]
    if n < 2:
        return members
    sums = vectors.astype(np.float64)
    sizes = np.ones(n)
    alike = vectors @ vectors.T
    np.fill_diagonal(alike, -np.inf)
    alive = np.ones(n, dtype=bool)
    best = alike.max(axis=1)
    nearest = alike.argmax(axis=1)
    while True:
        i = int(best.argmax())
        if best[i] < threshold:
            break
        j = int(nearest[i])
        sums[i] += sums[j]
        sizes[i] += sizes[j]
        members[i] += members[j]
        members[j] = []
        alive[j] = False
        # The mean resemblance of two clusters' members is the dot product of their sums over
        # the product of their sizes (the vectors are unit length).
        row = (sums @ sums[i]) / (sizes * sizes[i])
        row[~alive] = -np.inf
        row[i] = -np.inf
        alike[i, :] = row
        alike[:, i] = row
        alike[j, :] = -np.inf
        alike[:, j] = -np.inf
        best[j] = -np.inf
        stale = np.flatnonzero(alive & ((nearest == i) | (nearest == j)))
        if len(stale):
            best[stale] = alike[stale].max(axis=1)
            nearest[stale] = alike[stale].argmax(axis=1)
        closer = alive & (row > best)
        best[closer] = row[closer]
        nearest[closer] = i
        best[i] = row.max()
        nearest[i] = int(row.argmax())
    return [m for m in members if m]


def _keep_themes(plan: _Plan, recent: list[_Objection], taken: set[int]) -> None:
    """Give each new cluster the theme most of its objections were in (each theme to one cluster
    at most, a taught theme to none), so that a theme keeps its id and name while it holds the
    same objections."""
    overlap: Counter[tuple[int, int]] = Counter()
    for o in recent:
        target = plan.theme_of[o.id]
        if target < 0 and o.theme_id not in taken:
            overlap[(target, o.theme_id)] += 1
    given: dict[int, int] = {}
    for (cluster, theme_id), _ in sorted(overlap.items(), key=lambda kv: (-kv[1], kv[0])):
        if cluster not in given and theme_id not in given.values():
            given[cluster] = theme_id
    for object_id, target in list(plan.theme_of.items()):
        if target in given:
            plan.theme_of[object_id] = given[target]


def _apply(session: Session, ctx: Context, recent: list[_Objection], plan: _Plan, now: datetime) -> Regrouped:
    """Move the objections the plan moves, make its new themes, and keep the names honest. An
    objection a marketer placed meanwhile, or whose theme was merged meanwhile, is left alone;
    one whose theme changed since it was read makes the plan stale (_Stale)."""
    serialize(session, "themes.regroup")  # one regrouping writes at a time; the next sees its result
    done = Regrouped(considered=len(recent))
    merged = {
        row.id
        for row in session.connection().execute(
            sa.select(col(Theme.id)).where(col(Theme.merged_into_id).is_not(None))
        )
    }
    touched: set[int] = set()
    was = {o.id: o for o in recent}
    groups: dict[int, list[_Objection]] = defaultdict(list)
    for object_id, target in plan.theme_of.items():
        groups[target].append(was[object_id])
    now_there = {
        row.id: (row.theme_id, row.placed)
        for row in session.connection().execute(
            sa.select(col(Objection.id), col(Objection.theme_id), col(Objection.placed)).where(
                col(Objection.id).in_(bindparam("ids", expanding=True))
            ),
            {"ids": list(was)},
        )
    }
    # Moved, placed (a rename places without moving) or split meanwhile: plan again.
    if any(now_there.get(o.id, (o.stored, o.placed)) != (o.stored, o.placed) for o in recent):
        raise _Stale
    stored = {object_id: theme_id for object_id, (theme_id, _) in now_there.items()}
    for target, members in sorted(groups.items()):
        movers = [o for o in members if stored.get(o.id) not in (None, target)]
        if not movers:
            continue
        new = None
        if target < 0:
            public = [o.text for o in members if not o.confidential]
            new = themes.new_theme(session, public[0] if public else None, now)
            assert new.id is not None
            target = new.id
        elif target in merged:
            continue
        moved = 0
        for o in movers:
            if (
                session.connection()
                .execute(_MOVE, {"object": o.id, "was": stored[o.id], "to": target})
                .rowcount
            ):
                moved += 1
                touched.update({stored[o.id], target})
        done.moved += moved
        if new is not None and moved:
            done.new_themes += 1
        elif new is not None:
            session.delete(new)  # a marketer placed them all a moment ago: no empty theme is left
            session.flush()
    session.flush()
    session.expire_all()
    corpus = _document_frequencies([o.text for o in recent if not o.confidential])
    for theme_id in sorted(touched):
        changed = session.get(Theme, theme_id)
        if changed is None:
            continue
        themes.rebuild(session, ctx, changed)
        if changed.origin == themes.FOUND and _name_by_distinct_words(session, changed, corpus):
            done.renamed += 1
    if done.moved:
        audit.record(
            session,
            at=now,
            actor_id=None,
            action="themes.regroup",
            subject="themes",
            moved=done.moved,
            new=done.new_themes,
        )
    return done


_MOVE = (
    sa.update(Objection)
    .where(
        col(Objection.id) == bindparam("object"),
        col(Objection.theme_id) == bindparam("was"),
        col(Objection.placed).is_(False),
    )
    .values(theme_id=bindparam("to"))
)


def _document_frequencies(texts: list[str]) -> tuple[int, Counter[str]]:
    frequencies: Counter[str] = Counter()
    for text in texts:
        frequencies.update(set(_words(text)))
    return len(texts), frequencies


def _words(text: str) -> list[str]:
    return [w for w in themes.meaningful(text) if not w.isdigit()]


def distinct_words(texts: list[str], corpus: tuple[int, Counter[str]]) -> list[str]:
    """The words that set `texts` apart from the rest: said by many of them, and by few others."""
    total, frequencies = corpus
    here: Counter[str] = Counter()
    for text in texts:
        here.update(set(_words(text)))
    scored = {
        w: (n / len(texts)) * math.log((1 + total) / (1 + frequencies.get(w, n))) for w, n in here.items()
    }
    return sorted(scored, key=lambda w: (-scored[w], w))


def _name_by_distinct_words(session: Session, theme: Theme, corpus: tuple[int, Counter[str]]) -> bool:
    """Name a found theme after its most distinctive words (of its non-confidential objections
    only), unless its name already says them; whether it was renamed."""
    public = list(
        session.connection()
        .execute(
            sa.select(col(Objection.text))
            .where(col(Objection.theme_id) == theme.id, col(Objection.confidential).is_(False))
            .limit(themes.SAID_LIMIT)
        )
        .scalars()
    )
    if not public:
        return False
    ranked = distinct_words(public, corpus)
    named = set(re.findall(r"[^\W_]+", theme.name.casefold()))
    if named and named <= set(ranked[:KEPT_NAME]) | {w for w in named if w.isdigit()}:
        return False
    wanted = " ".join(ranked[:NAME_WORDS])
    if not wanted:
        return False
    before = theme.name
    themes.take_name(session, theme, wanted, themes.FOUND)
    return theme.name != before
