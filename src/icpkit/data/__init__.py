"""The CRM: its data contract, sources (files, SQL, DuckDB), loading, validation and the synthetic generator."""
