"""SQL storage: tables, engine set-up, unit of work, repositories and migrations."""
