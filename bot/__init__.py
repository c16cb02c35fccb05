"""ragbot application: configuration, generators, chat orchestration and front ends."""
