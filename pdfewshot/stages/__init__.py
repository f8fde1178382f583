"""Stages: each a function of a config dataclass, meeting the next stage only through checkpoint files."""
