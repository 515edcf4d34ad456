"""`nero archive`: many recordings replayed losslessly, each to its own audit and summary, on local worker
processes or Ray actors (docs/SCALING.md)."""
