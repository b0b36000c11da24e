"""Profile tables: the canonical schema, the bundled-table store and importers."""
