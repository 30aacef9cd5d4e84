"""yadtq's Faust tables, one per module, each with its read helpers."""
