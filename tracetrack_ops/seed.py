"""Deterministic, realistic bulk data for demos and benchmarks, loaded with COPY.

    from tracetrack_ops.seed import seed
    report = seed("postgresql://...", 600_000, seed=42)

What gets written
-----------------
`bags` is the exact number of bag rows written (parents + children). About
10% of the children are unlinked (registered, waiting, status pending); the
rest sit in parents. Parents hold up to their format's capacity (30): most
are full and completed, some in progress, a few pending with no children.
Parent QRs use the default formats `SB#####` and `M444-#####` (100,000 each);
past 200,000 parents a third format `P#######` is added to `parent_format`
(capacity 30, expected weight 30). Child QRs are `CB#########`.

Completed parents go onto bills of 10-50 parents per dispatch area: most bills
completed (full), one open bill per area processing (partly filled) and a few
new ones with no parents; every counter equals the real sum. Users: admins,
billers and dispatchers in every dispatch area, all with one password (the
caller's, else a random one the report carries; hashed once with argon2id),
named `seed<S>.admin1`,
`seed<S>.biller1`, `seed<S>.<area>.1` ...

The event log has one row per parent scan, link, child registration
(`bag_created`, for the unlinked children) and bill action (`bill_created`,
`bill_add`, `bill_complete`), generated in time order over the past 90 days
(working hours, 08:00-22:00 IST) so that id order is occurred_at order; bag
and bill ids follow creation time too.

How it loads
------------
One connection, one transaction (all or nothing): the tables are locked
against writers (readers go on), a database that already holds bags is
refused, then preformatted COPY text goes into app_user, bill, bag and event
(in that order, for the foreign keys) and the identity sequences are moved
past the ids used. COPY stores the ids itself: for identity columns COPY
always writes the value supplied, even for GENERATED ALWAYS (it behaves like
INSERT ... OVERRIDING SYSTEM VALUE), so every id and parent_id is computed
in Python from the sequences' positions and nothing is read back. ANALYZE
follows the commit.

Python is not the bottleneck (about 3 s of CPU per million bags); the bag
COPY is, server-side: its 4 foreign-key checks per row (about 40% of it)
and 8 indexes. Measured on 2 cores (PostgreSQL 15, default settings):
600,000 bags in 22-25 s, 6,000,000 bags (6.2M events) in 206-229 s.

Same `seed` (and same database starting state) gives the same QRs, links,
bills, users and counts; pass `now` as well to get identical timestamps.
"""

from __future__ import annotations

import logging
import random
import secrets
import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from itertools import islice
from typing import NamedTuple

import psycopg
from psycopg import sql

from tracetrack_db import errors
from tracetrack_db.passwords import hash_password
from tracetrack_db.rawsql import value

__all__ = ["SeedRefused", "SeedReport", "seed"]

log = logging.getLogger(__name__)


DAYS = 90
DAY_MS = 86_400_000
SHIFT_START_MS = (2 * 60 + 30) * 60_000  # 02:30 UTC = 08:00 IST
SHIFT_MS = 14 * 3_600_000  # until 22:00 IST
MARGIN_MS = 60_000  # the newest event is a minute old

P_FULL = 0.86  # parents that are full (completed) ...
P_PARTIAL = 0.11  # ... partly filled (in_progress); the rest pending, empty
UNLINKED_SHARE = 0.10  # of all children
BILL_MIN, BILL_MAX = 10, 50
DEFAULT_CAPACITY, DEFAULT_EXPECTED = 30, Decimal(30)

CHILD_TEMPLATE = "CB{:09d}"
MAX_SEED = 2**63

_CHUNK_ROWS = 5_000


@dataclass(frozen=True)
class Family:
    """A parent QR family: the pattern of its parent_format row and how its QRs look."""

    name: str
    pattern: str
    template: str
    size: int  # distinct QRs the pattern allows
    weight: int  # mixing weight among the primary families; 0 = overflow, used last


FAMILIES: tuple[Family, ...] = (
    Family("SB", "^SB[0-9]{5}$", "SB{:05d}", 100_000, 3),
    Family("M444", "^M444-[0-9]{5}$", "M444-{:05d}", 100_000, 2),
    Family("P7", "^P[0-9]{7}$", "P{:07d}", 10_000_000, 0),
)

# Vehicle registration prefixes of the default areas' states.
_STATES = {
    "lucknow": "UP",
    "indore": "MP",
    "jaipur": "RJ",
    "hisar": "HR",
    "sri_ganganagar": "RJ",
    "sangaria": "RJ",
    "bathinda": "PB",
    "raipur": "CG",
    "ranchi": "JH",
    "akola": "MH",
}
_ALL_STATES = ("UP", "MP", "RJ", "HR", "PB", "CG", "JH", "MH", "GJ", "DL", "BR", "WB")
_DESTINATIONS = (
    "Delhi - Azadpur Mandi",
    "Mumbai - Vashi APMC",
    "Kolkata - Posta Bazar",
    "Chennai - Koyambedu",
    "Ahmedabad - Jamalpur",
    "Hyderabad - Bowenpally",
    "Bengaluru - Yeshwanthpur",
    "Nagpur - Kalamna",
    "Patna - Bazar Samiti",
    "Guwahati - Fancy Bazar",
    "Ludhiana - Grain Market",
    "Kanpur - Naubasta",
)
_CROPS = ("wheat", "paddy", "mustard", "cotton seed", "soybean", "chana", "maize", "bajra", "guar")

# Event flags for the bill actions of one block.
_CREATED, _ADD, _COMPLETE = 1, 2, 4
_NULL = "\\N"


class SeedRefused(errors.Conflict):
    """The target database cannot take this seed (it already holds bags, a name is taken...)."""

    code = "seed_refused"


@dataclass(frozen=True)
class SeedReport:
    bags: int
    parents: int
    children: int
    unlinked_children: int
    bills: dict[str, int]  # by status: new, processing, completed
    users: int
    events: int
    seconds: float
    parent_formats_added: tuple[str, ...] = ()
    username_prefix: str = ""  # e.g. "seed42." — log in as seed42.admin1 with `password`
    users_by_role: dict[str, int] = field(default_factory=dict)
    password: str = field(default="", repr=False)  # every seeded user's

    @property
    def bill_count(self) -> int:
        return sum(self.bills.values())


# --------------------------------------------------------------------------- time


@cache
def _suffixes() -> list[str]:
    """'SS.mmm+00' for every millisecond of a minute."""
    return [f"{s:02d}.{ms:03d}+00" for s in range(60) for ms in range(1000)]


class _Clock:
    """Work time (ms of shift time since the origin) -> timestamptz text.

    Working hours only: work time runs through each day's shift and then jumps
    to the next day's, so the mapping is monotonic and ordering survives it."""

    def __init__(self, now_ms: int):
        self.origin = ((now_ms - DAYS * DAY_MS) // DAY_MS) * DAY_MS + SHIFT_START_MS
        days, rest = divmod(now_ms - MARGIN_MS - self.origin, DAY_MS)
        self.span = days * SHIFT_MS + min(rest, SHIFT_MS)  # work ms available up to now
        self._minutes: dict[int, str] = {}
        self._suffix = _suffixes()

    def wall(self, w: int) -> int:
        q, r = divmod(w, SHIFT_MS)
        return self.origin + q * DAY_MS + r

    def text(self, w: int) -> str:
        q, r = divmod(w, SHIFT_MS)
        minute, ms = divmod(self.origin + q * DAY_MS + r, 60_000)
        prefix = self._minutes.get(minute)
        if prefix is None:
            prefix = self._minutes[minute] = datetime.fromtimestamp(minute * 60, UTC).strftime("%Y-%m-%d %H:%M:")
        return prefix + self._suffix[ms]


# --------------------------------------------------------------------------- plan


@dataclass
class _Bill:
    id: int
    bill_no: str
    capacity: int
    area: str
    created_by: int
    description: str
    destination: str
    vehicle_number: str
    created_w: int
    updated_w: int = 0
    completed_w: int | None = None
    parents: int = 0
    children: int = 0
    expected: Decimal = Decimal(0)

    @property
    def status(self) -> str:
        if self.completed_w is not None:
            return "completed"
        return "processing" if self.parents else "new"


@dataclass(frozen=True)
class _User:
    id: int
    username: str
    role: str
    area: str | None


class _Plan:
    """Everything about the data set except the child rows, which the writers
    derive from it on the fly (so two passes, bags and events, agree).

    The timeline is a sequence of blocks, one per parent in creation order:
    the parent scan, its links, its bill actions, then the child
    registrations that happened next. A final block holds the new bills."""

    def __init__(
        self,
        bags: int,
        seed: int,
        areas: list[str],
        caps: list[tuple[int, Decimal]],
        child_weight: Decimal,
        now_ms: int,
        bases: dict[str, int],
    ):
        self.bags, self.seed, self.areas = bags, seed, areas
        self.child_weight = child_weight
        self.clock = _Clock(now_ms)
        self.caps = caps
        self.exp_text = [_num(e) for _, e in caps]
        self.bill_base, self.bag_base, self.event_base = bases["bill"], bases["bag"], bases["event"]
        # One generator for the whole plan: the steps draw from it in this
        # order, so reordering them changes every seed's data.
        rng = random.Random(seed)
        self._plan_users(bases["app_user"])
        self.unlinked = _unlinked_count(bags, caps)
        self._weigh_areas(rng)
        used, pace = self._plan_parents(rng)
        self._plan_parent_qrs(rng, used)
        self._plan_unlinked(rng)
        self.child_base = rng.randrange(10**8)
        self.children = bags - self.parent_count
        self._plan_timeline(pace)
        self._plan_bills(rng)
        self._plan_new_bills(rng)
        self.events = self._count_events()

    # -- steps, in the order __init__ runs them

    def _plan_users(self, base: int) -> None:
        """Admins, billers and each area's dispatchers; more of them for bigger seeds."""
        self.prefix = f"seed{self.seed}."
        next_user = iter(range(base + 1, 2**63))
        users: list[_User] = []
        for k in range(1, 3):
            users.append(_User(next(next_user), f"{self.prefix}admin{k}", "admin", None))
        for k in range(1, 4 + min(self.bags // 1_000_000, 6)):
            users.append(_User(next(next_user), f"{self.prefix}biller{k}", "biller", None))
        per_area = 2 + min(self.bags // 250_000, 10)
        self.dispatchers: list[list[int]] = []
        for index, area in enumerate(self.areas):
            ids = []
            for k in range(1, per_area + 1):
                name = f"{self.prefix}{area}.{k}"
                if len(name) > 64:
                    name = f"{self.prefix}area{index}.{k}"
                user = _User(next(next_user), name, "dispatcher", area)
                users.append(user)
                ids.append(user.id)
            self.dispatchers.append(ids)
        self.users = users
        self.billers = [u.id for u in users if u.role == "biller"]

    def _weigh_areas(self, rng: random.Random) -> None:
        """Some areas are busier than others: parents, unlinked children and new bills follow these weights."""
        self._area_cum = _cumulative([rng.uniform(0.4, 1.6) for _ in self.areas])
        self._area_range = list(range(len(self.areas)))

    def _pick_area(self, rng: random.Random) -> int:
        """An area index, drawn by the areas' weights."""
        return rng.choices(self._area_range, cum_weights=self._area_cum)[0]

    def _plan_parents(self, rng: random.Random) -> tuple[list[int], array]:
        """Each parent's family, fill, area and dispatcher, until the bags not
        kept for unlinked children are used up; returns the QRs taken from each
        family and each parent's pace (how long its block takes per event)."""
        caps = self.caps
        primary = [i for i, f in enumerate(FAMILIES) if f.weight]
        overflow = [i for i, f in enumerate(FAMILIES) if not f.weight]
        used = [0] * len(FAMILIES)
        self.family = family = array("B")
        self.fill = fill = array("H")
        self.area = area_of = array("H")
        self.user = user_of = array("q")
        pace = array("d")
        remaining = self.bags - self.unlinked
        while remaining > 0:
            open_families = [i for i in primary if used[i] < FAMILIES[i].size]
            if open_families:
                f = rng.choices(open_families, [FAMILIES[i].weight for i in open_families])[0]
            else:
                open_families = [i for i in overflow if used[i] < FAMILIES[i].size]
                if not open_families:
                    raise errors.ValidationError("too many bags for the parent QR formats", field="bags")
                f = open_families[0]
            used[f] += 1
            cap = caps[f][0]
            draw = rng.random()
            n = cap if draw < P_FULL else rng.randint(1, cap - 1) if draw < P_FULL + P_PARTIAL and cap > 1 else 0
            n = min(n, remaining - 1)  # so that exactly `bags` rows come out
            a = self._pick_area(rng)
            family.append(f)
            fill.append(n)
            area_of.append(a)
            user_of.append(rng.choice(self.dispatchers[a]))
            pace.append(rng.uniform(0.6, 1.4))
            remaining -= 1 + n
        self.parent_count = len(fill)
        self.families_used = [FAMILIES[i] for i in range(len(FAMILIES)) if used[i]]
        return used, pace

    def _plan_parent_qrs(self, rng: random.Random, used: list[int]) -> None:
        """A sorted random sample of each family's numbers, handed out in parent order."""
        numbers = {
            i: iter(sorted(rng.sample(range(FAMILIES[i].size), used[i]))) for i in range(len(FAMILIES)) if used[i]
        }
        self.qr = [FAMILIES[f].template.format(next(numbers[f])) for f in self.family]

    def _plan_unlinked(self, rng: random.Random) -> None:
        """The unlinked children: after which block each is registered, in which area, by whom."""
        parents = self.parent_count
        self.block_unlinked = block_unlinked = array("I", bytes(4 * parents))
        for _ in range(self.unlinked):
            block_unlinked[rng.randrange(parents)] += 1
        self.unlinked_area = array("H")
        self.unlinked_user = array("q")
        for _ in range(self.unlinked):
            a = self._pick_area(rng)
            self.unlinked_area.append(a)
            self.unlinked_user.append(rng.choice(self.dispatchers[a]))

    def _plan_timeline(self, pace: array) -> None:
        """Each block's start in work ms, so that its share of the window follows
        its events (and its pace); start[parents] is the tail block's, and
        start[parents + 1] the end of the window."""
        fill, block_unlinked, parents = self.fill, self.block_unlinked, self.parent_count
        weights = [(1 + fill[i] + block_unlinked[i]) * pace[i] for i in range(parents)]
        tail_weight = max(1.0, sum(weights) / max(parents, 1) / 4)
        total = sum(weights) + tail_weight
        span = self.clock.span
        start = array("q")
        acc = 0.0
        for wgt in weights:
            start.append(int(acc / total * span))
            acc += wgt
        start.append(int(acc / total * span))
        start.append(span)
        self.start = start

    def _plan_bills(self, rng: random.Random) -> None:
        """Completed parents go onto their area's open bill, in block order; a
        bill completes when it reaches its capacity and the area opens another."""
        fill, family, area_of, start, caps = self.fill, self.family, self.area, self.start, self.caps
        parents, n_areas = self.parent_count, len(self.areas)
        self.bill_of = bill_of = array("i", [-1]) * parents
        self.bill_events = bill_events = array("B", bytes(parents))
        self.bills: list[_Bill] = []
        self._bill_numbers = [0] * n_areas
        open_bill: list[_Bill | None] = [None] * n_areas
        open_index = [-1] * n_areas
        recent_w = self.clock.span - 2 * SHIFT_MS  # parents of the last two days wait more often
        for i in range(parents):
            f = family[i]
            if fill[i] != caps[f][0]:
                continue  # only completed parents go on bills
            if rng.random() >= (0.25 if start[i] >= recent_w else 0.93):
                continue  # not billed (yet)
            a = area_of[i]
            created = open_bill[a] is None
            if created:
                open_bill[a] = self._new_bill(rng, a, 0)
                open_index[a] = len(self.bills) - 1
            bill = open_bill[a]
            assert bill is not None
            complete = bill.parents + 1 == bill.capacity
            bill_events[i] = _ADD | (_CREATED if created else 0) | (_COMPLETE if complete else 0)
            bill_of[i] = open_index[a]
            n_units = self.units(i)
            j = 1 + fill[i]
            if created:
                bill.created_w = self.work(i, j, n_units)
                j += 1
            bill.parents += 1
            bill.children += fill[i]
            bill.expected += caps[f][1]
            bill.updated_w = self.work(i, j, n_units)
            if complete:
                bill.completed_w = bill.updated_w = self.work(i, j + 1, n_units)
                open_bill[a] = None

    def _plan_new_bills(self, rng: random.Random) -> None:
        """The tail block: a few new bills nobody has filled yet."""
        start, parents = self.start, self.parent_count
        new_bills = max(1, round(len(self.bills) * 0.04))
        self.tail_first = len(self.bills)
        for k in range(new_bills):
            a = self._pick_area(rng)
            self._new_bill(rng, a, start[parents] + (k * (start[parents + 1] - start[parents])) // new_bills)

    def _count_events(self) -> int:
        # a parent_scan per parent, a link per linked child, a bag_created per
        # unlinked one (that is one per bag), and the bill actions
        return (
            self.bags
            + len(self.bills)
            + sum(b.parents for b in self.bills)
            + sum(1 for b in self.bills if b.completed_w is not None)
        )

    # -- helpers

    def _new_bill(self, rng: random.Random, a: int, created_w: int) -> _Bill:
        """Draw a bill for area a, numbered in its area's sequence, and append it to self.bills."""
        area = self.areas[a]
        self._bill_numbers[a] += 1
        crop, destination = rng.choice(_CROPS), rng.choice(_DESTINATIONS)
        bill = _Bill(
            id=self.bill_base + len(self.bills) + 1,
            bill_no=f"{area.upper()}/{self._bill_numbers[a]:05d}",
            capacity=rng.randint(BILL_MIN, BILL_MAX),
            area=area,
            created_by=rng.choice(self.billers),
            description=f"{crop}, {area} to {destination}",
            destination=destination,
            vehicle_number=_vehicle(rng, area),
            created_w=created_w,
            updated_w=created_w,
        )
        self.bills.append(bill)
        return bill

    def units(self, i: int) -> int:
        """Events (= time slots) in block i."""
        return 1 + self.fill[i] + self.bill_events[i].bit_count() + self.block_unlinked[i]

    def work(self, i: int, j: int, n_units: int) -> int:
        """Work time of slot j of block i's n_units."""
        s = self.start[i]
        return s + (j * (self.start[i + 1] - s)) // n_units

    def bill_status_counts(self) -> dict[str, int]:
        out = {"new": 0, "processing": 0, "completed": 0}
        for bill in self.bills:
            out[bill.status] += 1
        return out


def _unlinked_count(bags: int, caps: list[tuple[int, Decimal]]) -> int:
    """Unlinked children so that they make UNLINKED_SHARE of all children, given
    the mean fill the parents will have."""
    mean_fill = sum(P_FULL * c + P_PARTIAL * c / 2 for c, _ in caps) / len(caps)
    unlinked = round(
        bags * mean_fill * UNLINKED_SHARE / ((1 - UNLINKED_SHARE) * (1 + mean_fill) + UNLINKED_SHARE * mean_fill)
    )
    return min(unlinked, bags - 1)  # at least one parent


def _cumulative(weights: list[float]) -> list[float]:
    out, acc = [], 0.0
    for w in weights:
        acc += w
        out.append(acc)
    return out


def _vehicle(rng: random.Random, area: str) -> str:
    state = _STATES.get(area) or rng.choice(_ALL_STATES)
    letters = "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(2))
    return f"{state}{rng.randint(1, 60):02d}{letters}{rng.randint(1, 9999):04d}"


def _num(value: Decimal) -> str:
    """numeric text for COPY: no exponent, no trailing zeros."""
    return format(value.normalize(), "f")


# --------------------------------------------------------------------------- writers


def _user_rows(plan: _Plan, password_hash: str) -> Iterator[tuple[str, int]]:
    created = plan.clock.text(0)  # the first working minute of the window
    lines = [
        f"{u.id}\t{u.username}\t{password_hash}\t{u.role}\t{u.area or _NULL}\t{created}\t{created}\n"
        for u in plan.users
    ]
    yield "".join(lines), len(lines)


def _bill_rows(plan: _Plan) -> Iterator[tuple[str, int]]:
    text, w = plan.clock.text, plan.child_weight
    lines = []
    for b in plan.bills:
        status = b.status
        lines.append(
            f"{b.id}\t{b.bill_no}\t{b.capacity}\t{b.description}\t{b.destination}\t{b.vehicle_number}\t"
            f"{status}\t{b.parents}\t{b.children}\t{_num(w * b.children)}\t{_num(b.expected)}\t"
            f"{b.created_by}\t{text(b.created_w)}\t{text(b.updated_w)}\t"
            f"{text(b.completed_w) if b.completed_w is not None else _NULL}\n"
        )
        if len(lines) >= _CHUNK_ROWS:
            yield "".join(lines), len(lines)
            lines = []
    if lines:
        yield "".join(lines), len(lines)


class _Block(NamedTuple):
    """One parent's block of the timeline, with the ids it takes. Its children
    follow the parent in bag ids and serials: the linked ones, then the
    unlinked ones registered in the block.

    The writers unpack it positionally, in this field order: reading the
    fields by name cost about 3% more of the writers' CPU."""

    index: int  # type: ignore[assignment]  # the parent's position in the plan's arrays (shadows tuple.index)
    parent_id: int
    qr: str
    area: str
    user: int  # the dispatcher who scanned it and linked its children
    children: int  # linked children
    flags: int  # bill actions (_CREATED, _ADD, _COMPLETE)
    bill: _Bill | None  # the bill it went onto, if flags
    units: int  # time slots: scan, links, bill actions, registrations
    start: int  # work time of slot 0 (the scan)
    length: int  # work time the block spans; slot j is at start + j * length // units
    child_id: int  # id of the first child (= parent_id + 1)
    serial: int  # serial of the first child
    unlinked: range  # the unlinked children registered here, as plan.unlinked_* indexes


def _blocks(plan: _Plan) -> Iterator[_Block]:
    """The plan's blocks in order: the walk both writers share, so that the bag
    rows and the events agree on every id, serial and slot."""
    start, area_of, user_of, bill_of = plan.start, plan.area, plan.user, plan.bill_of
    bills, areas, qrs, units = plan.bills, plan.areas, plan.qr, plan.units
    next_bag = plan.bag_base + 1
    serial = plan.child_base
    u_index = 0
    ends = islice(start, 1, None)
    for i, n, flags, u, s, end in zip(
        range(plan.parent_count), plan.fill, plan.bill_events, plan.block_unlinked, start, ends, strict=False
    ):
        yield _Block(
            i,
            next_bag,
            qrs[i],
            areas[area_of[i]],
            user_of[i],
            n,
            flags,
            bills[bill_of[i]] if flags else None,
            units(i),
            s,
            end - s,
            next_bag + 1,
            serial,
            range(u_index, u_index + u),
        )
        next_bag += 1 + n + u
        serial += n + u
        u_index += u


def _bag_rows(plan: _Plan) -> Iterator[tuple[str, int]]:
    text, caps, family, exp_text, areas = plan.clock.text, plan.caps, plan.family, plan.exp_text, plan.areas
    u_area, u_user = plan.unlinked_area, plan.unlinked_user
    weight = plan.child_weight
    w_child = _num(weight)
    lines: list[str] = []
    for i, pid, pqr, area, user, n, flags, bill, n_units, s, length, child_id, serial, unlinked in _blocks(plan):
        f = family[i]
        cap = caps[f][0]
        status = "completed" if n == cap else "pending" if n == 0 else "in_progress"
        created = text(s)
        if bill is not None:
            # the parent was last touched when it went onto the bill
            add_j = 1 + n + (1 if flags & _CREATED else 0)
            updated = text(s + (add_j * length) // n_units)
            bill_id = str(bill.id)
        else:
            updated = text(s + (n * length) // n_units) if n else created
            bill_id = _NULL
        lines.append(
            f"{pid}\t{pqr}\tparent\t{status}\t{area}\t\\N\t{bill_id}\t{cap}\t{n}\t"
            f"{_num(weight * n)}\t{exp_text[f]}\t{user}\t{created}\t{updated}\n"
        )
        tail = f"\tchild\tcompleted\t{area}\t{pid}\t\\N\t\\N\t0\t{w_child}\t\\N\t{user}\t"
        for k in range(1, n + 1):
            t = text(s + (k * length) // n_units)
            lines.append(f"{child_id}\tCB{serial:09d}{tail}{t}\t{t}\n")
            child_id += 1
            serial += 1
        first = n_units - len(unlinked)  # the registrations close the block
        for k, u in enumerate(unlinked, first):
            t = text(s + (k * length) // n_units)
            lines.append(
                f"{child_id}\tCB{serial:09d}\tchild\tpending\t{areas[u_area[u]]}\t\\N\t\\N\t"
                f"\\N\t0\t{w_child}\t\\N\t{u_user[u]}\t{t}\t{t}\n"
            )
            child_id += 1
            serial += 1
        if len(lines) >= _CHUNK_ROWS:
            yield "".join(lines), len(lines)
            lines = []
    if lines:
        yield "".join(lines), len(lines)


def _event_rows(plan: _Plan) -> Iterator[tuple[str, int]]:
    text, areas = plan.clock.text, plan.areas
    u_area, u_user = plan.unlinked_area, plan.unlinked_user
    next_event = plan.event_base + 1
    lines: list[str] = []
    for _i, pid, pqr, area, user, n, flags, bill, n_units, s, length, child_id, serial, unlinked in _blocks(plan):
        lines.append(
            f"{next_event}\t{text(s)}\tparent_scan\t{user}\t{pid}\t{pqr}\t\\N\t\\N\t\\N\t\\N\t"
            f'{area}\t{{"created": true}}\n'
        )
        next_event += 1
        tail = f"\t{pid}\t{pqr}\t\\N\t\\N\t{area}\t\\N\n"
        for k in range(1, n + 1):
            lines.append(
                f"{next_event}\t{text(s + (k * length) // n_units)}\tlink\t{user}\t{child_id}\tCB{serial:09d}{tail}"
            )
            next_event += 1
            child_id += 1
            serial += 1
        j = 1 + n
        if bill is not None:
            who = bill.created_by
            if flags & _CREATED:
                lines.append(
                    f"{next_event}\t{text(s + (j * length) // n_units)}\tbill_created\t{who}\t"
                    f"\\N\t\\N\t\\N\t\\N\t{bill.id}\t{bill.bill_no}\t\\N\t\\N\n"
                )
                next_event += 1
                j += 1
            lines.append(
                f"{next_event}\t{text(s + (j * length) // n_units)}\tbill_add\t{who}\t"
                f"\\N\t\\N\t{pid}\t{pqr}\t{bill.id}\t{bill.bill_no}\t{area}\t\\N\n"
            )
            next_event += 1
            j += 1
            if flags & _COMPLETE:
                lines.append(
                    f"{next_event}\t{text(s + (j * length) // n_units)}\tbill_complete\t{who}\t"
                    f"\\N\t\\N\t\\N\t\\N\t{bill.id}\t{bill.bill_no}\t\\N\t\\N\n"
                )
                next_event += 1
                j += 1
        for k, u in enumerate(unlinked, j):
            lines.append(
                f"{next_event}\t{text(s + (k * length) // n_units)}\tbag_created\t"
                f"{u_user[u]}\t{child_id}\tCB{serial:09d}\t\\N\t\\N\t\\N\t\\N\t"
                f"{areas[u_area[u]]}\t\\N\n"
            )
            next_event += 1
            child_id += 1
            serial += 1
        if len(lines) >= _CHUNK_ROWS:
            yield "".join(lines), len(lines)
            lines = []
    for bill in plan.bills[plan.tail_first :]:
        lines.append(
            f"{next_event}\t{text(bill.created_w)}\tbill_created\t{bill.created_by}\t"
            f"\\N\t\\N\t\\N\t\\N\t{bill.id}\t{bill.bill_no}\t\\N\t\\N\n"
        )
        next_event += 1
    if lines:
        yield "".join(lines), len(lines)


_COPY = {
    "app_user": "COPY app_user (id, username, password_hash, role, dispatch_area, created_at, updated_at) FROM STDIN",
    "bill": "COPY bill (id, bill_no, capacity, description, destination, vehicle_number, status,"
    " linked_parent_count, total_child_count, total_weight_kg, expected_weight_kg, created_by,"
    " created_at, updated_at, completed_at) FROM STDIN",
    "bag": "COPY bag (id, qr_id, type, status, dispatch_area, parent_id, bill_id, capacity, child_count,"
    " weight_kg, expected_weight_kg, created_by, created_at, updated_at) FROM STDIN",
    "event": "COPY event (id, occurred_at, kind, user_id, bag_id, qr_id, parent_id, parent_qr, bill_id,"
    " bill_no, dispatch_area, details) FROM STDIN",
}
_TABLES = ("app_user", "bill", "bag", "event")

# Identity sequence position: the highest id in use, whichever is higher.
_ID_BASE = sql.SQL(
    "SELECT greatest((SELECT max(id) FROM {table}),"
    " pg_sequence_last_value(pg_get_serial_sequence(%(table)s, 'id')::regclass), 0)"
)
_SETVAL = "SELECT setval(pg_get_serial_sequence(%(table)s, 'id'), %(top)s)"


# --------------------------------------------------------------------------- entry point


def seed(
    conninfo: str,
    bags: int,
    *,
    seed: int = 42,
    password: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    now: datetime | None = None,
) -> SeedReport:
    """Load `bags` bag rows (parents + children) with their bills, users and
    events into an empty, migrated database; deterministic for a given `seed`.
    Every seeded user gets `password` (the password rules apply), or a random
    one when it is None; the report carries it.

    Raises SeedRefused when the database already holds bags, or one of the
    generated usernames, bill numbers or QR formats clashes with what is there.
    `progress(done, total)` is called now and then with rows written so far.
    """
    if not isinstance(bags, int) or isinstance(bags, bool) or bags < 1:
        raise errors.ValidationError("bags must be a whole number of at least 1", field="bags")
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < MAX_SEED:
        raise errors.ValidationError(f"seed must be a whole number from 0 to {MAX_SEED - 1}", field="seed")
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    now_ms = int(now.timestamp() * 1000)
    password = password if password is not None else secrets.token_urlsafe(15)
    password_hash = hash_password(password)

    # One connection, one transaction: all of it or nothing. (Loading the event
    # log on a second connection alongside the bags was measured and gained
    # nothing beyond run-to-run noise on 2 cores, as the two backends slow
    # each other down; not worth giving up atomicity.)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SET statement_timeout = 0")
        with conn.transaction():
            _lock(conn, (*_TABLES, "parent_format"))
            if value(conn, "SELECT EXISTS (SELECT 1 FROM bag)"):
                raise SeedRefused(
                    "the database already holds bags: seed only an empty database (a fresh one, migrated)"
                )
            plan = _make_plan(conn, bags, seed, now_ms)
            log.info(
                "seed: planned %d parents, %d bills in %.2fs",
                plan.parent_count,
                len(plan.bills),
                time.perf_counter() - started,
            )
            added = _prepare_formats(conn, plan)
            _check_names(conn, plan)

            meter = _Meter(len(plan.users) + len(plan.bills) + plan.bags + plan.events, progress)
            _copy(conn, "app_user", _user_rows(plan, password_hash), meter)
            _copy(conn, "bill", _bill_rows(plan), meter)
            _copy(conn, "bag", _bag_rows(plan), meter)
            # the event log's month partitions for the past months it spans (0021): its rows
            # would fall into the default partition, for the maintenance to move
            conn.execute(
                "SELECT tt_event_partition_make(m) FROM generate_series("
                "date_trunc('month', to_timestamp(%s / 1000.0) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', now(), "
                "interval '1 month') m",
                (plan.clock.origin,),
            )
            _copy(conn, "event", _event_rows(plan), meter)
            used = {
                "app_user": plan.users[-1].id,
                "bill": plan.bills[-1].id if plan.bills else None,
                "bag": plan.bag_base + plan.bags,
                "event": plan.event_base + plan.events,
            }
            for table, top in used.items():
                if top is not None:
                    conn.execute(_SETVAL, {"table": table, "top": top})
        phase = time.perf_counter()
        for table in _TABLES:
            conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))
        log.info("seed: committed and analyzed in %.2fs", time.perf_counter() - phase)
    meter.finish()
    roles: dict[str, int] = {}
    for user in plan.users:
        roles[user.role] = roles.get(user.role, 0) + 1
    return SeedReport(
        bags=plan.bags,
        parents=plan.parent_count,
        children=plan.children,
        unlinked_children=plan.unlinked,
        bills=plan.bill_status_counts(),
        users=len(plan.users),
        events=plan.events,
        seconds=round(time.perf_counter() - started, 3),
        parent_formats_added=tuple(added),
        username_prefix=plan.prefix,
        users_by_role=roles,
        password=password,
    )


def _lock(conn: psycopg.Connection, tables: tuple[str, ...]) -> None:
    """Keep writers out of `tables` (readers go on) until the seed commits."""
    conn.execute("SET LOCAL lock_timeout = '30s'")
    try:
        conn.execute(
            sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(sql.SQL(", ").join(map(sql.Identifier, tables)))
        )
    except psycopg.errors.LockNotAvailable as exc:
        raise SeedRefused("the database is busy (a writer holds the tables for 30s): try again") from exc
    conn.execute("SET LOCAL lock_timeout = 0")


class _Meter:
    """Rows written so far; calls progress(done, total) every half percent or so."""

    def __init__(self, total: int, progress: Callable[[int, int], None] | None):
        self.total, self.progress = total, progress
        self.done = self.last = 0
        self.step = max(10_000, total // 200)

    def add(self, rows: int) -> None:
        self.done += rows
        if self.progress and self.done - self.last >= self.step:
            self.last = self.done
            self.progress(self.done, self.total)

    def finish(self) -> None:
        if self.progress:
            self.progress(self.total, self.total)


def _copy(conn: psycopg.Connection, table: str, rows: Iterator[tuple[str, int]], meter: _Meter) -> None:
    started = time.perf_counter()
    with conn.cursor() as cur, cur.copy(_COPY[table]) as copy:
        for chunk, count in rows:
            copy.write(chunk)
            meter.add(count)
    log.info("seed: COPY %s in %.2fs", table, time.perf_counter() - started)


def _make_plan(conn: psycopg.Connection, bags: int, seed: int, now_ms: int) -> _Plan:
    areas = [r[0] for r in conn.execute("SELECT name FROM dispatch_area ORDER BY name")]
    if not areas:
        raise SeedRefused("there are no dispatch areas")
    caps = []
    for family in FAMILIES:
        # the format the server itself would apply to this family's QRs, if any
        row = conn.execute(
            "SELECT capacity, expected_weight_kg FROM tt_parent_format(%s)", (family.template.format(0),)
        ).fetchone()
        caps.append((row[0], row[1]) if row and row[0] is not None else (DEFAULT_CAPACITY, DEFAULT_EXPECTED))
    child = conn.execute("SELECT capacity FROM tt_parent_format(%s)", (CHILD_TEMPLATE.format(0),)).fetchone()
    if child and child[0] is not None:
        raise SeedRefused(f"a parent format matches the seeder's child QRs ({CHILD_TEMPLATE.format(0)})")
    child_weight = Decimal(value(conn, "SELECT tt_child_weight()"))
    bases = {t: value(conn, _ID_BASE.format(table=sql.Identifier(t)), {"table": t}) for t in _TABLES}
    return _Plan(bags, seed, areas, caps, child_weight, now_ms, bases)


def _prepare_formats(conn: psycopg.Connection, plan: _Plan) -> list[str]:
    """Add the parent formats the plan uses that the database lacks."""
    added = []
    for family in plan.families_used:
        row = conn.execute("SELECT capacity FROM tt_parent_format(%s)", (family.template.format(0),)).fetchone()
        if row and row[0] is not None:
            continue
        taken = conn.execute("SELECT pattern FROM parent_format WHERE name = %s", (family.name,)).fetchone()
        if taken:
            raise SeedRefused(f"parent format {family.name!r} exists with another pattern ({taken[0]})")
        conn.execute(
            "INSERT INTO parent_format (name, pattern, capacity, expected_weight_kg) VALUES (%s, %s, %s, %s)",
            (family.name, family.pattern, DEFAULT_CAPACITY, DEFAULT_EXPECTED),
        )
        added.append(family.name)
    return added


def _check_names(conn: psycopg.Connection, plan: _Plan) -> None:
    names = [u.username.lower() for u in plan.users]
    taken = conn.execute("SELECT username FROM app_user WHERE lower(username) = ANY(%s) LIMIT 3", (names,)).fetchall()
    if taken:
        raise SeedRefused(
            f"users of seed {plan.seed} exist already ({', '.join(r[0] for r in taken)}): "
            "use another seed or a fresh database"
        )
    numbers = [b.bill_no.lower() for b in plan.bills]
    taken = conn.execute("SELECT bill_no FROM bill WHERE lower(bill_no) = ANY(%s) LIMIT 3", (numbers,)).fetchall()
    if taken:
        raise SeedRefused(f"bill numbers exist already ({', '.join(r[0] for r in taken)})")
