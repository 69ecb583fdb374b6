"""Pure metric functions (classification, calibration, selective prediction, OOD,
corruption, diagnostics) and plotting."""
