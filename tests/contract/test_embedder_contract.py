"""The Embedder contract, run against every adapter (feature hashing, local MiniLM)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from adapters.embeddings.hashing import HashingEmbedder
from adapters.embeddings.local import LocalEmbedder, installed
from codeforge.ports.embedder import Embedder

pytestmark = pytest.mark.contract

TEXTS = [
    "def parse_header(line): return line.split(':')",
    "class HttpClient: send requests over a socket",
    "",
    "   ",
    "naïve café — ünïcode ✓",
]


class EmbedderContract:
    @pytest.fixture
    def embedder(self) -> Embedder:
        raise NotImplementedError

    async def test_one_unit_vector_per_text_in_order(self, embedder: Embedder) -> None:
        vectors = await embedder.embed(TEXTS)
        assert len(vectors) == len(TEXTS)
        for v in vectors:
            assert len(v) == embedder.dimensions
            assert math.sqrt(sum(x * x for x in v)) == pytest.approx(1.0, abs=1e-4)
        alone = await embedder.embed([TEXTS[1]])
        assert alone[0] == pytest.approx(vectors[1], abs=1e-5)

    async def test_the_same_text_gives_the_same_vector(self, embedder: Embedder) -> None:
        first = await embedder.embed(TEXTS[:2])
        again = await embedder.embed(TEXTS[:2])
        for a, b in zip(first, again, strict=True):
            assert a == pytest.approx(b, abs=1e-5)

    async def test_no_texts_no_vectors(self, embedder: Embedder) -> None:
        assert await embedder.embed([]) == []

    async def test_related_texts_are_closer_than_unrelated_ones(self, embedder: Embedder) -> None:
        a, b, c = await embedder.embed(
            [
                "parse the http header line",
                "parsing header lines of http",
                "the zebra grazed on savanna grass",
            ]
        )
        close = sum(x * y for x, y in zip(a, b, strict=True))
        far = sum(x * y for x, y in zip(a, c, strict=True))
        assert close > far

    def test_the_model_is_named(self, embedder: Embedder) -> None:
        assert embedder.model
        assert embedder.dimensions > 0


class TestHashingEmbedder(EmbedderContract):
    @pytest.fixture
    def embedder(self) -> Embedder:
        return HashingEmbedder()


@pytest.mark.skipif(not installed(), reason="the [embeddings] extra is not installed")
class TestLocalEmbedder(EmbedderContract):
    @pytest.fixture
    def embedder(self) -> Embedder:
        return LocalEmbedder()  # the model itself loads once per process

    def test_the_model_is_minilm_with_384_dimensions(self, embedder: Embedder) -> None:
        assert embedder.dimensions == 384
        assert "MiniLM" in embedder.model


class TestOpenAICompatibleEmbedder(EmbedderContract):
    """Against the scripted server's /v1/embeddings, through the real HTTP adapter."""

    @pytest.fixture
    async def embedder(self, scripted_llm: Any) -> Any:
        from adapters.embeddings.openai import OpenAICompatibleEmbedder
        from adapters.llm.openai import OpenAICompatibleModel
        from codeforge.ports.llm import ModelEndpoint

        llm = OpenAICompatibleModel()
        endpoint = ModelEndpoint(base_url=scripted_llm.base_url, model="scripted-embedder")
        embedder = OpenAICompatibleEmbedder(llm, endpoint, "embedder")
        await embedder.embed(["warm up: learn the dimensions"])
        yield embedder
        await llm.close()

    async def test_an_unreachable_endpoint_is_unavailable_not_a_crash(self) -> None:
        from adapters.embeddings.openai import OpenAICompatibleEmbedder
        from adapters.llm.openai import OpenAICompatibleModel
        from codeforge.ports.embedder import EmbedderUnavailable
        from codeforge.ports.llm import ModelEndpoint

        llm = OpenAICompatibleModel(backoff_base=0.01)
        endpoint = ModelEndpoint(base_url="http://127.0.0.1:9/v1", model="m", max_retries=0)
        try:
            with pytest.raises(EmbedderUnavailable, match="could not be used"):
                await OpenAICompatibleEmbedder(llm, endpoint, "down").embed(["x"])
        finally:
            await llm.close()
