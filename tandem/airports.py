"""The airports Andaman Air serves: codes, names and the ways customers refer to them.

This is brand data: a team adopting the project replaces this table (and the NLU lookup
table ``data/nlu/lookups.yml`` that mirrors it).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Airport:
    code: str
    city: str
    name: str
    country: str
    aliases: tuple[str, ...] = ()


AIRPORTS: tuple[Airport, ...] = (
    Airport(
        "BKK",
        "Bangkok",
        "Suvarnabhumi Airport",
        "TH",
        ("bangkok", "krung thep", "krungthep", "suvarnabhumi", "bkk", "bangkok suvarnabhumi", "bangkok airport"),
    ),
    Airport(
        "DMK",
        "Bangkok (Don Mueang)",
        "Don Mueang International Airport",
        "TH",
        ("don mueang", "don muang", "donmueang", "dmk", "bangkok don mueang"),
    ),
    Airport("HKT", "Phuket", "Phuket International Airport", "TH", ("phuket", "puket", "phuket town", "hkt")),
    Airport(
        "CNX",
        "Chiang Mai",
        "Chiang Mai International Airport",
        "TH",
        ("chiang mai", "chiangmai", "chang mai", "chiang-mai", "cnx"),
    ),
    Airport("KBV", "Krabi", "Krabi International Airport", "TH", ("krabi", "ao nang", "kbv")),
    Airport("USM", "Koh Samui", "Samui International Airport", "TH", ("koh samui", "ko samui", "samui", "usm")),
    Airport(
        "CEI", "Chiang Rai", "Mae Fah Luang Chiang Rai International Airport", "TH", ("chiang rai", "chiangrai", "cei")
    ),
    Airport("HDY", "Hat Yai", "Hat Yai International Airport", "TH", ("hat yai", "hatyai", "songkhla", "hdy")),
    Airport("SIN", "Singapore", "Singapore Changi Airport", "SG", ("singapore", "changi", "sing", "sin")),
    Airport("KUL", "Kuala Lumpur", "Kuala Lumpur International Airport", "MY", ("kuala lumpur", "kl", "klia", "kul")),
    Airport("HKG", "Hong Kong", "Hong Kong International Airport", "HK", ("hong kong", "hongkong", "hkg")),
    Airport("NRT", "Tokyo", "Narita International Airport", "JP", ("tokyo", "narita", "nrt")),
    Airport("ICN", "Seoul", "Incheon International Airport", "KR", ("seoul", "incheon", "icn")),
    Airport("DPS", "Bali", "Ngurah Rai International Airport", "ID", ("bali", "denpasar", "ngurah rai", "dps")),
    Airport(
        "SGN",
        "Ho Chi Minh City",
        "Tan Son Nhat International Airport",
        "VN",
        ("ho chi minh city", "ho chi minh", "saigon", "hcmc", "sgn"),
    ),
    Airport("HAN", "Hanoi", "Noi Bai International Airport", "VN", ("hanoi", "ha noi", "noi bai", "han")),
)

HUBS: tuple[str, ...] = ("BKK", "DMK")


def airport_by_code(code: str) -> Airport | None:
    """The airport with this IATA code, or None."""
    code = code.strip().upper()
    return next((a for a in AIRPORTS if a.code == code), None)
