"""Writes this example's data: capital-city questions as Harbor tasks (train, val and test suites)."""

import json
from pathlib import Path

CAPITALS = {
    "France": "Paris",
    "Japan": "Tokyo",
    "Kenya": "Nairobi",
    "Peru": "Lima",
    "Canada": "Ottawa",
    "Egypt": "Cairo",
    "Norway": "Oslo",
    "Chile": "Santiago",
    "India": "New Delhi",
    "Spain": "Madrid",
    "Italy": "Rome",
    "Ghana": "Accra",
    "Cuba": "Havana",
    "Nepal": "Kathmandu",
    "Poland": "Warsaw",
    "Iran": "Tehran",
    "Mali": "Bamako",
    "Laos": "Vientiane",
    "Fiji": "Suva",
    "Oman": "Muscat",
    "Chad": "N'Djamena",
    "Togo": "Lome",
    "Iraq": "Baghdad",
    "Qatar": "Doha",
    "Malta": "Valletta",
    "Benin": "Porto-Novo",
    "Gabon": "Libreville",
    "Haiti": "Port-au-Prince",
    "Yemen": "Sanaa",
    "Niger": "Niamey",
}
EUROPE = {"France", "Norway", "Spain", "Italy", "Poland", "Malta"}
REGION = {c: "europe" if c in EUROPE else "other" for c in CAPITALS}


def task(country: str) -> dict:
    return {
        "task_id": country.lower(),
        "instruction": f"What is the capital of {country}?",
        "verifier": {"kind": "in_process", "fn_name": "exact_match", "expected": CAPITALS[country]},
        "metadata": {"region": REGION[country]},
    }


def write(path: Path, countries: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(task(c)) + "\n" for c in countries))


here = Path(__file__).parent
countries = list(CAPITALS)
write(here / "data" / "train.jsonl", countries[:20])
write(here / "benchmarks" / "val" / "tasks.jsonl", countries[:10])
write(here / "benchmarks" / "test" / "tasks.jsonl", countries)
