"""Links in answers: kept where the sources or the question give them, removed otherwise."""

from __future__ import annotations

from guardrails.links import REMOVED, LinkFilter, hosts

SOURCES = "Brew green tea at 80 °C. More at https://tea.example/guide and www.leaves.example."


def test_a_link_the_sources_give_is_kept() -> None:
    text = "See https://tea.example/guide [1]."
    assert LinkFilter(SOURCES).clean(text) == text


def test_a_link_nobody_gave_is_removed_whatever_its_form() -> None:
    links = LinkFilter(SOURCES)
    for link in ("https://login.attacker.example/?q=x", "www.attacker.example", "attacker.example/sign-in",
                 "[Sign in](http://attacker.example/)", "![x](http://attacker.example/p.png)"):  # fmt: skip
        cleaned = links.clean(f"Brew at 80 °C. {link}")
        assert "attacker" not in cleaned, link
        assert REMOVED in cleaned


def test_a_link_split_across_streamed_tokens_is_judged_whole() -> None:
    tokens = ["Sign in at htt", "ps://login.", "attacker.example/", "x now", "."]
    assert "".join(LinkFilter(SOURCES).stream(tokens)) == f"Sign in at {REMOVED} now."


def test_words_and_numbers_are_not_links() -> None:
    text = "Version 2.5 of e.g. the guide is at 80.5 °C, i.e. warm."
    assert LinkFilter("").clean(text) == text
    assert hosts("see tea.example/guide") == {"tea.example"}
