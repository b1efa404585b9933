"""What the comparison pages, tables and CSV files show, derived from runs and their epoch rows."""
