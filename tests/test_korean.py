"""Korean: keyword search finds a document whatever particles and endings its words carry, English terms
stay as they are, and the grounding check reads Korean names and numbers (no capital letters; scale
words such as 만 and 억; counters such as 명 and 세)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from guardrails.grounding import claims, unsupported
from retrieval.chunking import chunk_id
from retrieval.embedder import MultiHeadEmbeddings
from retrieval.sparse import BM25Encoder, hangul_terms, terms
from retrieval.store import VectorStore
from retrieval.types import DEFAULT_KB, Chunk, Scope

ROOT = Path(__file__).resolve().parents[1]


# ---- keyword search ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "The Eiffel Tower was completed in 1889 for the World's Fair.",
            ["eiffel", "tower", "complet", "1889", "world", "fair"],
        ),
        (
            "Rockets burn propellant to produce thrust; running databases, RUNNING runners!",
            ["rocket", "burn", "propel", "produc", "thrust", "run", "databas", "run", "runner"],
        ),
        (
            "Mount Vesuvius buried Pompeii in the year 79.",
            ["mount", "vesuvius", "buri", "pompeii", "year", "79"],
        ),
        (
            "Café naïve résumé: e-mail x86_64 C++ 3.14 don't",
            ["caf", "na", "ve", "r", "sum", "e", "mail", "x86", "64", "c", "3", "14", "don't"],
        ),
    ],
)
def test_english_terms_are_unchanged(text: str, expected: list[str]) -> None:
    """A store built from English text keeps its term ids: English text gets the stems it always got."""
    assert terms(text) == expected


def test_inflected_korean_words_share_their_terms() -> None:
    with_ro, with_neun = terms("데이터베이스로"), terms("데이터베이스는")
    assert len(set(with_ro) & set(with_neun)) == 5  # 데이 이터 터베 베이 이스; only 스로 and 스는 differ
    assert hangul_terms("법") == ["법"]  # a lone syllable is a term of its own


def test_mixed_text_keeps_english_stems_and_korean_terms() -> None:
    found = terms("Python으로 databases를 저장한다")
    assert {"python", "databas", "저장"} <= set(found)
    assert "python으로" not in found


def _bm25_store(tmp_path: Path, texts: dict[str, str]) -> tuple[VectorStore, dict[str, str]]:
    """A real embedded store holding one chunk per text, with BM25 vectors (dense vectors all alike)."""
    chunks = [
        Chunk(id=chunk_id(name, text, 0), source=name, title=name, text=text, position=0)
        for name, text in texts.items()
    ]
    store = VectorStore("korean", path=tmp_path / "qdrant")
    store.ensure_collection(dim=2, n_heads=1, head_dim=2, embedder="none")
    avg = sum(len(terms(t)) for t in texts.values()) / len(texts)
    bm25 = BM25Encoder(avg_len=avg)
    emb = MultiHeadEmbeddings(
        full=np.full((len(chunks), 2), 0.7071, np.float32), heads=np.ones((len(chunks), 1, 2), np.float32)
    )
    store.upsert(chunks, emb, [bm25.encode_document(c.text) for c in chunks], ["done"] * len(chunks))
    return store, {c.id: c.source for c in chunks}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("데이터베이스는 무엇을 저장해?", "db"),  # 데이터베이스는 for the document's 데이터베이스로
        ("고양이가 잡는 동물은?", "cats"),  # 고양이가 for 고양이는
        ("What does SQL query?", "db"),  # an English word in a Korean document
        ("오늘 서울 날씨가 어때?", "weather"),
    ],
)
def test_korean_bm25_finds_a_document_through_another_inflection(
    tmp_path: Path, query: str, expected: str
) -> None:
    store, sources = _bm25_store(
        tmp_path,
        {
            "db": "관계형 데이터베이스로 고객 정보를 저장하고 SQL로 조회한다.",
            "weather": "서울의 날씨는 오늘 맑고 기온은 영상 5도이다.",
            "cats": "고양이는 밤에 쥐를 사냥하고 기분이 좋으면 가르랑거린다.",
        },
    )
    try:
        hits = store.search_sparse(BM25Encoder().encode_query(query), 3, Scope.of(DEFAULT_KB))
        assert sources[hits[0].id] == expected
    finally:
        store.close()


def test_korean_costs_nothing_where_there_is_none() -> None:
    """Keyword search never loads the Korean analyser, nor does the grounding check of English text."""
    code = (
        "import sys\n"
        "from guardrails.grounding import unsupported\n"
        "from retrieval.sparse import terms\n"
        "terms('데이터베이스로 저장한다'); terms('The Eiffel Tower')\n"
        "unsupported('Jean Paul Sartre came in 1889.', ['Sartre came to Paris in 1889.'])\n"
        "print('kiwipiepy' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---- grounding -------------------------------------------------------------------------------------------
SOURCE = (
    "홍길동은 1970년 서울에서 태어났다. 그가 세운 회사의 직원은 50,000명이고 작년 매출은 120,000,000원이었다. "
    "회사의 예산은 3억 5천만 원이고 회원은 2만 명이다. 대통령으로 선거될 수 있는 자는 40세에 달하여야 한다. "
    "제3조 대한민국의 영토는 한반도와 그 부속도서로 한다. 회의는 매년 2회 열린다."
)


@pytest.mark.parametrize(
    "answer",
    [
        "홍길동이 서울에서 태어났어요 [1].",  # names with particles the source does not use
        "홍길동의 회사는 서울에 있다.",
        "직원은 5만 명입니다.",  # a scale word for the digits of the source
        "매출은 1억 2천만 원이었습니다.",  # two scale words
        "매출은 1억2천만 원.",  # written without the space
        "예산은 350,000,000원이에요.",  # digits for the source's scale words
        "회원은 20,000명이다.",
        "대통령이 되려면 40세 이상이어야 한다.",  # a counter after the number
        "대통령 후보는 40살 이상이어야 한다.",  # another counter
        "회의는 매년 2번 열린다.",  # another counter for the number (회 → 번)
        "헌법 3조는 영토를 정한다.",  # 조: an article's number, not a trillion
    ],
)
def test_a_right_korean_answer_in_other_words_is_supported(answer: str) -> None:
    assert unsupported(answer, [SOURCE]) == []


def test_an_english_answer_from_a_korean_source_is_checked_by_its_numbers() -> None:
    assert unsupported("It has 50,000 staff and 20,000 members [1].", [SOURCE], names=False) == []
    assert unsupported("It has 60,000 staff [1].", [SOURCE], names=False) == ["60,000"]


@pytest.mark.parametrize(
    ("answer", "invented"),
    [
        ("임꺽정이 서울에서 태어났다.", "임꺽정"),  # a name (NNP) the source does not have
        ("홍길동은 부산에서 태어났다.", "부산"),
        ("직원은 7만 명입니다.", "7만"),  # a number with a scale word
        ("매출은 2억 원이었습니다.", "2억"),
        ("직원은 50,001명입니다.", "50,001"),  # digits that match no quantity
        ("홍길동은 1971년에 태어났다.", "1971"),
        ("대통령이 되려면 45세 이상이어야 한다.", "45"),
        ("예산은 5조 원이다.", "5조"),  # a trillion: the source's 5 is in 5천만, not bare
    ],
)
def test_an_invented_korean_name_or_number_is_caught(answer: str, invented: str) -> None:
    assert invented in unsupported(answer, [SOURCE])


def test_korean_claims_are_read_whole() -> None:
    assert claims("매출은 1억 2천만 원, 직원은 5만 명 [2].", names=False) == ["1억 2천만", "5만"]
    assert claims("직원은 19세 이상 3명", names=False) == ["19", "3"]


def test_korean_text_is_split_into_sentences_for_focusing() -> None:
    from retrieval.passages import sentences

    text = "대통령의 임기는 5년으로 한다. 대통령은 중임할 수 없다. It ends here."
    assert sentences(text) == ["대통령의 임기는 5년으로 한다.", "대통령은 중임할 수 없다.", "It ends here."]
