"""What the user sees: progress bars and tables (console), pictures (plots), VisualDL scalars."""
