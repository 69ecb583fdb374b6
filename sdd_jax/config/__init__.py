"""Configs: command-line loading and overrides (cli), typed fields and the one
ConfigError (fields), the image config's schema and its validation."""
