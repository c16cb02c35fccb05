"""Generation: the Generator protocol and its implementations (embedded llama.cpp, vLLM by URL)."""

from generation.protocol import ChatMessage, Generator, GeneratorUnavailable, match_choices

__all__ = ["ChatMessage", "Generator", "GeneratorUnavailable", "match_choices"]
