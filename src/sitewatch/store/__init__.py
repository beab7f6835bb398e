"""The catalogue database: every scene of every site, per-scene results, observations,
alerts, reports and evidence (SQLAlchemy Core; SQLite by default)."""
