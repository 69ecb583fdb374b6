"""Pure metric functions (classification, OOD, corruption, diagnostics) and
plotting."""
