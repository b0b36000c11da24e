"""Importers that convert other tools' profile tables into the canonical schema."""
