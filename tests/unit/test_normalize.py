"""Unit tests of tandem.normalize: customer text -> canonical slot values."""

from __future__ import annotations

import contextlib
import random
import string
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from functools import partial
from pathlib import Path

import pytest

from tandem import normalize as n
from tandem.errors import Invalid

TODAY = date(2026, 11, 24)  # a Tuesday
WINDOW = 180
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _reason(func: Callable[..., object], *args: object, **kwargs: object) -> str:
    with pytest.raises(Invalid) as info:
        func(*args, **kwargs)
    return info.value.reason


def _date(text: str) -> date:
    return n.parse_travel_date(text, today=TODAY, window_days=WINDOW)


# --------------------------------------------------------------------------- cities


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Bangkok", "BKK"),
        ("bangkok", "BKK"),
        ("from bangkok", "BKK"),
        ("Krung Thep", "BKK"),
        ("BKK airport", "BKK"),
        ("bkk", "BKK"),
        ("Suvarnabhumi Airport", "BKK"),
        ("to chiang mai please", "CNX"),
        ("Chiang Mai International Airport", "CNX"),
        ("chiangmai", "CNX"),
        ("fly to Phuket", "HKT"),
        ("I want to go to Phuket!!", "HKT"),
        ("Don Mueang", "DMK"),
        ("don muang airport bangkok", "DMK"),
        ("Bangkok (Don Mueang)", "DMK"),
        ("DMK", "DMK"),
        ("Chiang Rai", "CEI"),
        ("ko samui", "USM"),
        ("KL", "KUL"),
        ("kualalumpur", "KUL"),
        ("Ho Chi Minh City", "SGN"),
        ("saigon", "SGN"),
        ("hong kong", "HKG"),
        ("Tokyo Narita", "NRT"),
        ("denpasar, bali", "DPS"),
        ("  hanoi.  ", "HAN"),
        # typos (fuzzy match)
        ("chaing mai", "CNX"),
        ("puket", "HKT"),
        ("kuala lumpor", "KUL"),
        ("singapor", "SIN"),
        ("bangkk", "BKK"),
        ("to krabbi please", "KBV"),
        ("chang rai", "CEI"),
        ("hong kogn", "HKG"),
    ],
)
def test_normalize_city(text: str, code: str) -> None:
    assert n.parse_city(text) == code


@pytest.mark.parametrize(
    "text",
    [
        "Paris",
        "London",
        "asdf",
        "New York",
        "Berlin",
        "London Heathrow",
        "Da Nang",  # not "ao nang" (Krabi)
        "danang",
        "change",  # not "changi"
        "Shanghai",
        "",
        "   ",
        "🙂🙂",
        "\x00\x1b",
        "x" * 10_000,
    ],
)
def test_normalize_city_unknown(text: str) -> None:
    assert _reason(n.parse_city, text) == "unknown_city"


def test_normalize_city_two_airports_is_ambiguous() -> None:
    assert _reason(n.parse_city, "from bangkok to phuket") == "ambiguous_city"


def test_normalize_city_in_huge_input_uses_only_the_start() -> None:
    assert n.parse_city("to phuket " + "blah " * 3000) == "HKT"


# --------------------------------------------------------------------------- dates


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("25 January", date(2027, 1, 25)),
        ("25 Jan", date(2027, 1, 25)),
        ("25/1", date(2027, 1, 25)),
        ("25.1", date(2027, 1, 25)),
        ("January 25th", date(2027, 1, 25)),
        ("jan 25", date(2027, 1, 25)),
        ("the 25th of January", date(2027, 1, 25)),
        ("twenty-fifth of january", date(2027, 1, 25)),
        ("2027-01-25", date(2027, 1, 25)),
        ("25/01/2027", date(2027, 1, 25)),
        ("25.1.27", date(2027, 1, 25)),
        ("1/25", date(2027, 1, 25)),  # only month-first makes sense
        ("25/1/2570", date(2027, 1, 25)),  # Thai Buddhist-era year
        ("Dec 1st, 2026", date(2026, 12, 1)),
        ("the first of december", date(2026, 12, 1)),
        ("24 Nov", TODAY),  # day-month without year: next occurrence, today included
        ("25 nov", date(2026, 11, 25)),
        ("today", TODAY),
        ("tomorrow", date(2026, 11, 25)),
        ("tomorrow at 10am", date(2026, 11, 25)),
        ("day after tomorrow", date(2026, 11, 26)),
        ("I'd like to travel the day after tomorrow thanks", date(2026, 11, 26)),
        ("next Friday", date(2026, 11, 27)),
        ("friday", date(2026, 11, 27)),
        ("on monday", date(2026, 11, 30)),
        ("next tuesday", date(2026, 12, 1)),
        ("this weekend", date(2026, 11, 28)),
        ("next weekend", date(2026, 12, 5)),
        ("in two weeks", date(2026, 12, 8)),
        ("in 3 days", date(2026, 11, 27)),
        ("in a month", date(2026, 12, 24)),
        ("the 3rd", date(2026, 12, 3)),
        ("on the 30th", date(2026, 11, 30)),
        ("the 31st", date(2026, 12, 31)),
        ("on 25 jan please", date(2027, 1, 25)),
        ("I want to leave on 25 jan", date(2027, 1, 25)),
        ("leaving on the 1st of december", date(2026, 12, 1)),
        ("21 may 2027", date(2027, 5, 21)),
        ("พรุ่งนี้", date(2026, 11, 25)),  # Thai "tomorrow", via dateparser
        ("25 มกราคม", date(2027, 1, 25)),  # Thai month name, via dateparser
        ("next week", date(2026, 12, 1)),  # via dateparser
    ],
)
def test_parse_travel_date(text: str, expected: date) -> None:
    assert _date(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("yesterday", "past"),
        ("day before yesterday", "past"),
        ("last friday", "past"),
        ("2026-11-23", "past"),
        ("1 Jan 2026", "past"),
        ((TODAY + timedelta(days=300)).isoformat(), "beyond_window"),
        ("23 Nov", "beyond_window"),  # next occurrence is a year away
        ("25 Jan 2030", "beyond_window"),
        ("", "unparseable"),
        ("   ", "unparseable"),
        ("please", "unparseable"),
        ("asdf", "unparseable"),
        ("31/2", "unparseable"),
        ("🙂🙂🙂", "unparseable"),
        ("\x00\x07\x1b", "unparseable"),
        ("x" * 10_000, "unparseable"),
    ],
)
def test_parse_travel_date_invalid(text: str, reason: str) -> None:
    assert _reason(_date, text) == reason


def test_parse_travel_date_window_edges() -> None:
    last_day = TODAY + timedelta(days=WINDOW)
    assert _date(last_day.isoformat()) == last_day
    assert _reason(_date, (last_day + timedelta(days=1)).isoformat()) == "beyond_window"
    assert _reason(n.parse_travel_date, "in 5 days", today=TODAY, window_days=3) == "beyond_window"


def test_parse_travel_date_leap_day_is_next_existing_one() -> None:
    assert n.parse_travel_date("29 Feb", today=TODAY, window_days=2000) == date(2028, 2, 29)


def test_importing_normalize_does_not_import_dateparser() -> None:
    code = "import sys, tandem.normalize; assert 'dateparser' not in sys.modules"
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode()


def test_parse_travel_date_is_fast_after_warm_up() -> None:
    # The first dateparser call loads its data (about 0.3 s); later calls must be quick.
    _date("พรุ่งนี้")
    texts = ["next week", "พรุ่งนี้", "asdf", "25 Jan", "tomorrow", "in two weeks", "the 3rd"] * 20
    start = time.perf_counter()
    for text in texts:
        with contextlib.suppress(Invalid):
            _date(text)
    average = (time.perf_counter() - start) / len(texts)
    assert average < 0.05, f"{average * 1000:.1f} ms per call"


# --------------------------------------------------------------------------- passengers


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2", 2),
        ("9", 9),
        ("two", 2),
        ("Three", 3),
        ("three of us", 3),
        ("a family of four", 4),
        ("we are 5", 5),
        ("for 3 people", 3),
        ("4 passengers please", 4),
        ("I need 2 tickets", 2),
        ("just me", 1),
        ("only me", 1),
        ("myself", 1),
        ("alone", 1),
        ("me", 1),
        ("me and my wife", 2),
        ("my husband and I", 2),
        ("me & my friend", 2),
        ("me and a friend", 2),
        ("me and my 2 kids", 3),
        ("me, my wife and our 2 kids", 4),
        ("me and my parents", 3),
        ("2 kids and my wife", 3),
        ("2 adults and 1 child", 3),
        ("two adults, one infant", 3),
        ("an adult and a child", 2),
        ("couple", 2),
        ("a couple", 2),
        ("both of us", 2),
        ("2.0", 2),
        (2.0, 2),
        (3, 3),
    ],
)
def test_parse_passengers(value: str | float, expected: int) -> None:
    assert n.parse_passengers(value) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("0", "out_of_range"),
        ("zero", "out_of_range"),
        ("-1", "out_of_range"),
        (0, "out_of_range"),
        (-2, "out_of_range"),
        (10, "out_of_range"),
        ("10", "out_of_range"),
        ("a family of twelve", "out_of_range"),
        (10.0, "out_of_range"),
        ("99999999999999999999", "out_of_range"),
        ("", "unparseable"),
        ("abc", "unparseable"),
        ("me and my kids", "unparseable"),  # how many kids?
        ("2 or 3", "unparseable"),
        ("2.5", "unparseable"),
        (2.5, "unparseable"),
        (float("nan"), "unparseable"),
        (float("inf"), "unparseable"),
        (True, "unparseable"),
        ("🙂" * 5000, "unparseable"),
        ("\x00\x1b", "unparseable"),
    ],
)
def test_parse_passengers_invalid(value: str | float, reason: str) -> None:
    assert _reason(n.parse_passengers, value) == reason


def test_parse_passengers_custom_maximum() -> None:
    assert n.parse_passengers("4", max_passengers=4) == 4
    assert _reason(n.parse_passengers, "5", max_passengers=4) == "out_of_range"


# --------------------------------------------------------------------------- cabin


@pytest.mark.parametrize(
    ("text", "cabin"),
    [
        ("economy", "economy"),
        ("Economy Class please", "economy"),
        ("eco", "economy"),
        ("coach", "economy"),
        ("standard", "economy"),
        ("cheapest", "economy"),
        ("the cheapest one", "economy"),
        ("econmy", "economy"),
        ("ECONOMY", "economy"),
        ("ชั้นประหยัด", "economy"),
        ("business", "business"),
        ("business class", "business"),
        ("biz", "business"),
        ("flat bed", "business"),
        ("lie flat", "business"),
        ("bussiness", "business"),
        ("buisness", "business"),
        ("ชั้นธุรกิจ", "business"),
    ],
)
def test_normalize_cabin(text: str, cabin: str) -> None:
    assert n.parse_cabin(text) == cabin


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("first class", "no_first_class"),
        ("First", "no_first_class"),
        ("1st class", "no_first_class"),
        ("ชั้นหนึ่ง", "no_first_class"),
        ("premium", "unknown_cabin"),
        ("business or economy", "unknown_cabin"),
        ("window seat", "unknown_cabin"),
        ("", "unknown_cabin"),
        ("🙂", "unknown_cabin"),
        ("x" * 10_000, "unknown_cabin"),
    ],
)
def test_normalize_cabin_invalid(text: str, reason: str) -> None:
    assert _reason(n.parse_cabin, text) == reason


# --------------------------------------------------------------------------- booking reference


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("AB12CD", "AB12CD"),
        ("my ref is ab12cd", "AB12CD"),
        ("AB12CD.", "AB12CD"),
        ("ab 12 cd", "AB12CD"),
        ("ab-12-cd", "AB12CD"),
        ("booking AB12CD for AN204", "AB12CD"),
        ("ref: X9Y8Z7, email me at abc123@foo.com", "X9Y8Z7"),
        ("ab12cd AB12CD", "AB12CD"),
        ("รหัสการจอง AB12CD ค่ะ", "AB12CD"),
        ("\x00AB\x0012CD", "AB12CD"),  # control characters count as spaces
    ],
)
def test_normalize_booking_ref(text: str, ref: str) -> None:
    assert n.parse_booking_ref(text, flight_prefix="AN") == ref


@pytest.mark.parametrize(
    "text",
    [
        "",
        "abcdef",  # no digit
        "123456",  # no letter
        "ab12c",
        "ab12cd7",
        "AN1234",  # a flight number
        "flight AN1234",
        "john12@mail.com",  # part of an e-mail
        "ab12cd@x.com",
        "my ref is ab 12 cd",  # spaces are only joined when that is the whole answer
        "xy34zw and ab12cd",  # two different references
        "🙂" * 3000,
    ],
)
def test_normalize_booking_ref_invalid(text: str) -> None:
    assert _reason(partial(n.parse_booking_ref, flight_prefix="AN"), text) == "invalid_booking_ref"


# --------------------------------------------------------------------------- flight number


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("AN 204", "AN204"),
        ("an204", "AN204"),
        ("flight AN204", "AN204"),
        ("AN-204", "AN204"),
        ("204", "AN204"),
        ("#204", "AN204"),
        ("flight 204", "AN204"),
        ("flight no. 204", "AN204"),
        ("AN12", "AN12"),
        ("AN 1234", "AN1234"),
    ],
)
def test_normalize_flight_number(text: str, number: str) -> None:
    assert n.parse_flight_number(text, prefix="AN") == number


@pytest.mark.parametrize(
    "text",
    ["", "hello", "4", "AN2", "AN12345", "12345", "TG 204", "AN 204 and AN 305", "🙂", "x" * 10_000],
)
def test_normalize_flight_number_invalid(text: str) -> None:
    assert _reason(partial(n.parse_flight_number, prefix="AN"), text) == "invalid_flight_number"


# --------------------------------------------------------------------------- e-mail


@pytest.mark.parametrize(
    ("text", "email"),
    [
        ("John.Smith@Example.COM", "john.smith@example.com"),
        ("my email is a.b+c@mail.co.th.", "a.b+c@mail.co.th"),
        ("abc123@foo.com thanks", "abc123@foo.com"),
        ("<joe@x.org>", "joe@x.org"),
        ("mailto:joe@x.org", "joe@x.org"),
        ("joe@x.org, JOE@x.org", "joe@x.org"),
        ("อีเมล somchai@mail.co.th ครับ", "somchai@mail.co.th"),
    ],
)
def test_normalize_email(text: str, email: str) -> None:
    assert n.parse_email(text) == email


@pytest.mark.parametrize(
    "text",
    [
        "",
        "joe",
        "a@b",
        "a@b.c",  # TLD too short
        "joe@x.c0m",
        "a..b@c.com",
        ".ab@c.com",
        "ab.@c.com",
        "foo@-bar.com",
        "foo@bar-.com",
        "one@a.com two@b.com",
        "x" * 65 + "@example.com",  # local part too long
        "a@" + ".".join(["b" * 60] * 5) + ".com",  # over 254 characters
        "🙂@🙂.com",
        "x" * 10_000,
    ],
)
def test_normalize_email_invalid(text: str) -> None:
    assert _reason(n.parse_email, text) == "invalid_email"


# --------------------------------------------------------------------------- last name


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("Smith", "Smith"),
        ("smith", "Smith"),
        ("SMITH", "Smith"),
        ("my last name is Nguyen", "Nguyen"),
        ("it's O'Brien", "O'Brien"),
        ("o'brien", "O'Brien"),
        ("o\u2019brien", "O'Brien"),
        ("surname: van der Berg", "van der Berg"),
        ("my surname is: dos Santos.", "dos Santos"),
        ("de la cruz", "de la Cruz"),
        ("Van", "Van"),
        ("Nguyen Van A", "Nguyen Van A"),
        ("Müller", "Müller"),
        ("MÜLLER", "Müller"),
        ("smith-jones", "Smith-Jones"),
        ("MCDONALD", "McDonald"),
        ("McDonald", "McDonald"),
        ("St. John", "St. John"),
        ("it's smith, thanks", "Smith"),
        ("The name is Bond", "Bond"),
        ("สมศักดิ์", "สมศักดิ์"),
        ("  Smith  ", "Smith"),
    ],
)
def test_normalize_last_name(text: str, name: str) -> None:
    assert n.parse_last_name(text) == name


@pytest.mark.parametrize(
    "text",
    ["", "   ", "'", "Smith2", "a@b", "smith@mail.com", "Smith 🙂", "x" * 61, "x" * 10_000, "<script>", "\x00"],
)
def test_normalize_last_name_invalid(text: str) -> None:
    assert _reason(n.parse_last_name, text) == "invalid_last_name"


# --------------------------------------------------------------------------- rating


@pytest.mark.parametrize(
    ("value", "rating"),
    [
        ("5", 5),
        (5.0, 5),
        (3, 3),
        ("five", 5),
        ("Four", 4),
        ("4 stars", 4),
        ("1 star", 1),
        ("5/5", 5),
        ("4 out of 5", 4),
        ("5.0", 5),
        ("⭐⭐⭐", 3),
    ],
)
def test_parse_rating(value: str | float, rating: int) -> None:
    assert n.parse_rating(value) == rating


@pytest.mark.parametrize(
    "value",
    ["", "0", "6", 0, 6, 4.5, "3.5", "10/10", "3/10", "great", "4 or 5", True, float("nan"), "🙂", "x" * 10_000],
)
def test_parse_rating_invalid(value: str | float) -> None:
    assert _reason(n.parse_rating, value) == "invalid_rating"


# --------------------------------------------------------------------------- option


@pytest.mark.parametrize(
    ("text", "index"),
    [
        ("first", 0),
        ("1", 0),
        ("one", 0),
        ("option 1", 0),
        ("the first one", 0),
        ("second", 1),
        ("2nd", 1),
        ("option two", 1),
        ("the second one please", 1),
        ("i'll take the 2nd", 1),
        ("2.", 1),
        ("third", 2),
        ("#3", 2),
        ("last", 2),
        ("the last one", 2),
        ("second to last", 1),
    ],
)
def test_parse_option(text: str, index: int) -> None:
    assert n.parse_option(text, count=3) == index


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("cheapest", 3),
        ("earliest", 3),
        ("morning", 3),
        ("cheapest one", 3),
        ("4", 3),
        ("0", 3),
        ("fourth", 3),
        ("first or second", 3),
        ("10:30", 3),
        ("", 3),
        ("🙂", 3),
        ("x" * 10_000, 3),
        ("first", 0),
        ("second to last", 1),
    ],
)
def test_parse_option_invalid(text: str, count: int) -> None:
    assert _reason(n.parse_option, text, count=count) == "invalid_option"


def test_parse_option_last_depends_on_count() -> None:
    assert n.parse_option("last", count=1) == 0
    assert n.parse_option("last", count=5) == 4


# --------------------------------------------------------------------------- robustness

_FUNCTIONS: dict[str, Callable[[str], object]] = {
    "city": n.parse_city,
    "date": _date,
    "passengers": n.parse_passengers,
    "cabin": n.parse_cabin,
    "booking_ref": partial(n.parse_booking_ref, flight_prefix="AN"),
    "flight_number": partial(n.parse_flight_number, prefix="AN"),
    "email": n.parse_email,
    "last_name": n.parse_last_name,
    "rating": n.parse_rating,
    "option": lambda text: n.parse_option(text, count=3),
}


@pytest.mark.parametrize("name", sorted(_FUNCTIONS))
def test_random_input_raises_only_invalid(name: str) -> None:
    func = _FUNCTIONS[name]
    rng = random.Random(f"normalize-{name}")
    alphabet = string.printable + "กขคงจฉ่้๊ัิ🙂👍\u200b\u202e\x00\x1b€üß@/.-:'"
    for _ in range(150):
        length = rng.choice([0, 1, 3, 8, 30, 200, 10_000])
        text = "".join(rng.choices(alphabet, k=length))
        try:
            func(text)
        except Invalid as exc:
            assert exc.reason


def test_days_back_admits_recent_past_dates_only() -> None:
    today = date(2026, 11, 24)
    assert n.parse_travel_date("yesterday", today=today, window_days=30, days_back=2) == date(2026, 11, 23)
    assert n.parse_travel_date("today", today=today, window_days=30, days_back=2) == today
    with pytest.raises(Invalid) as error:
        n.parse_travel_date("5 days ago", today=today, window_days=30, days_back=2)
    assert error.value.reason in {"past", "unparseable"}


@pytest.mark.parametrize(
    ("text", "route"),
    [
        ("Book a flight from Bangkok to Phuket on 25 January for 2 people", ("BKK", "HKT")),
        ("phuket to don mueang", ("HKT", "DMK")),
        ("hkt to dmk", ("HKT", "DMK")),
        ("from chiang mai to bangkok", ("CNX", "BKK")),
        ("need to go to samui from don mueang", ("DMK", "USM")),
        ("I want to fly to Chiang Mai", (None, "CNX")),
        ("from chaing mai please", ("CNX", None)),
        ("I want to fly next friday", (None, None)),
        ("Chiang Mai", (None, None)),
        ("how much luggage can I bring", (None, None)),
        ("", (None, None)),
    ],
)
def test_route_from_text(text: str, route: tuple[str | None, str | None]) -> None:
    assert n.parse_route(text) == route


def test_the_flight_prefix_is_the_brands() -> None:
    """FLIGHT_NUMBER_PREFIX decides what a flight number is: a re-branded airline needs no code change."""
    assert n.parse_flight_number("flight tg 204", prefix="TG") == "TG204"
    assert n.parse_flight_number("204", prefix="TG") == "TG204"
    assert _reason(partial(n.parse_flight_number, prefix="TG"), "AN 204") == "invalid_flight_number"
    # A flight number of the brand is never a booking reference; another airline's may be one.
    assert _reason(partial(n.parse_booking_ref, flight_prefix="TG"), "TG1234") == "invalid_booking_ref"
    assert n.parse_booking_ref("AN1234", flight_prefix="TG") == "AN1234"
