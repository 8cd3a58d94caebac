"""Every data card in data_cards/ has the Hugging Face dataset-card sections and the
'Datasheets for Datasets' questions, each with some text under it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

CARDS_DIR = Path(__file__).resolve().parents[1] / "data_cards"

# The canonical list (also in data_cards/README.md). Hugging Face dataset card, then datasheet.
REQUIRED_SECTIONS = (
    "Dataset Description",
    "Dataset Summary",
    "Supported Tasks and Leaderboards",
    "Languages",
    "Dataset Structure",
    "Data Instances",
    "Data Fields",
    "Data Splits",
    "Dataset Creation",
    "Curation Rationale",
    "Source Data",
    "Annotations",
    "Personal and Sensitive Information",
    "Considerations for Using the Data",
    "Social Impact of Dataset",
    "Discussion of Biases",
    "Other Known Limitations",
    "Additional Information",
    "Dataset Curators",
    "Licensing Information",
    "Citation Information",
    "Datasheet",
    "Motivation",
    "Composition",
    "Collection Process",
    "Consent and Licence",
    "Intended Uses",
    "Out-of-scope Uses",
    "Known Biases",
    "Maintenance",
)
# Sections that group sub-sections and may have no text of their own.
GROUPS = {"Dataset Description", "Dataset Structure", "Dataset Creation", "Considerations for Using the Data", "Additional Information", "Datasheet"}
EXPECTED_CARDS = {"simulator", "voxceleb1", "voxceleb2", "vggface", "avspeech", "common_voice", "fairface", "mav_celeb"}


def _norm(title: str) -> str:
    t = re.sub(r"[^a-z0-9 ]+", " ", title.lower().replace("license", "licence"))
    return " ".join(t.split())


def _sections(text: str) -> dict[str, str]:
    """Heading -> text until the next heading (any level); headings inside ``` fences are ignored."""
    out, current, body, fenced = {}, None, [], False
    for line in text.splitlines():
        if line.strip().startswith("```"):
            fenced = not fenced
        m = None if fenced else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            if current is not None:
                out.setdefault(current, "\n".join(body))
            current, body = _norm(m.group(1)), []
        else:
            body.append(line)
    if current is not None:
        out.setdefault(current, "\n".join(body))
    return out


def _cards():
    return sorted(p for p in CARDS_DIR.glob("*.md") if p.name != "README.md")


def test_expected_cards_exist():
    assert EXPECTED_CARDS <= {p.stem for p in _cards()}


@pytest.mark.parametrize("card", _cards(), ids=lambda p: p.name)
def test_card_has_every_section_with_text(card):
    text = card.read_text(encoding="utf-8")
    sections = _sections(text)
    missing = [s for s in REQUIRED_SECTIONS if _norm(s) not in sections]
    assert not missing, f"{card.name}: missing sections {missing}"
    empty = [s for s in REQUIRED_SECTIONS if s not in GROUPS and not sections[_norm(s)].strip()]
    assert not empty, f"{card.name}: sections without text {empty}"
    assert not re.search(r"\b(TODO|TBD|More Information Needed)\b", text), f"{card.name}: placeholder left; write 'unknown' instead"


def test_readme_lists_the_canonical_sections():
    readme = (CARDS_DIR / "README.md").read_text(encoding="utf-8")
    for s in REQUIRED_SECTIONS:
        assert s in readme, f"data_cards/README.md does not list {s!r}"
