"""Writes this example's data: three skills (capitals, squares, opposites), each a training set of
Harbor tasks that doubles as its benchmark, so the stage x benchmark matrix shows what is kept."""

import json
from pathlib import Path

SKILLS = {
    "capitals": {
        f"What is the capital of {c}?": a
        for c, a in {
            "France": "Paris",
            "Japan": "Tokyo",
            "Kenya": "Nairobi",
            "Peru": "Lima",
            "Canada": "Ottawa",
            "Egypt": "Cairo",
            "Norway": "Oslo",
            "Chile": "Santiago",
            "Spain": "Madrid",
            "Italy": "Rome",
        }.items()
    },
    "squares": {f"What is {n} squared?": str(n * n) for n in range(3, 13)},
    "opposites": {
        f"What is the opposite of {w}?": o
        for w, o in {
            "hot": "cold",
            "up": "down",
            "early": "late",
            "full": "empty",
            "light": "dark",
            "fast": "slow",
            "open": "closed",
            "loud": "quiet",
            "wet": "dry",
            "rich": "poor",
        }.items()
    },
}

here = Path(__file__).parent
for skill, pairs in SKILLS.items():
    rows = [
        {
            "task_id": f"{skill}-{i}",
            "instruction": q,
            "verifier": {"kind": "in_process", "fn_name": "exact_match", "expected": a},
        }
        for i, (q, a) in enumerate(pairs.items())
    ]
    folder = here / "data" / skill
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tasks.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
