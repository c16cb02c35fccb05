"""The grounding check judges names and numbers by what they mean, not how they are spelled: a right
answer written in other words is not cut, an invented name or number still is."""

from __future__ import annotations

import pytest

from guardrails.grounding import unsupported

SOURCE = (
    "Ytterbium is named after the gadolinite mine in Ytterby, Sweden. About 1,500,000 people visit "
    "each year. The village has twelve thousand residents and 3 km of tunnels. Jean Paul Sartre "
    "stayed there; the Viking settlers came first. Its café is run by the Netherlands' oldest firm."
)


@pytest.mark.parametrize(
    "answer",
    [
        "It is named after a mine in Ytterby, Swedish [1].",  # demonym for the country
        "Dutch owners run the café.",  # demonym that shares no letters with the country
        "About 1.5 million people visit each year [1].",  # scale word for a written-out number
        "The village has 12,000 residents.",  # digits for a number in words
        "It has three kilometres of tunnels.",  # a small number in words
        "Jean-Paul Sartre stayed there.",  # hyphen for a space
        "The Vikings came first.",  # plural of a name in the source
        "It is near Ytterby's mine.",  # possessive
    ],
)
def test_a_right_answer_in_other_words_is_supported(answer: str) -> None:
    assert unsupported(answer, [SOURCE]) == []


@pytest.mark.parametrize(
    ("answer", "invented"),
    [
        ("The mine is in Norway.", "Norway"),
        ("The first miners were Norwegian.", "Norwegian"),
        ("The village has 12,500 residents.", "12,500"),
        ("About 3.5 million people visit.", "3.5"),
        ("It was founded in 1300.", "1300"),
        ("Sartre met Simone de Beauvoir there.", "Simone"),
    ],
)
def test_an_invented_name_or_number_is_still_caught(answer: str, invented: str) -> None:
    assert invented in unsupported(answer, [SOURCE])
