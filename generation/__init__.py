"""Generation: the Generator protocol and its implementations (embedded llama.cpp, vLLM by URL)."""

from generation.protocol import ChatMessage, ContextExceeded, Generator, GeneratorUnavailable, match_choices

__all__ = ["ChatMessage", "ContextExceeded", "Generator", "GeneratorUnavailable", "match_choices"]
