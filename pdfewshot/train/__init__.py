"""The training room: tasks (one per loss), the loop with validation and early stopping, resume,
data-parallel processes and learning-rate schedules. Knows nothing of stages, the CLI or reporting."""
