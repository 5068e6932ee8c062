"""icpkit: learn a B2B company's Ideal Customer Profile from its own CRM history."""

__version__ = "0.1.0"
