"""Files that stages hand each other: atomic writes, checkpoints and their typed metadata."""
