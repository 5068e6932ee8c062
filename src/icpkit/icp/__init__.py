"""The ICP from the trained models: weights, scorecard, scores and tiers, segments, cohorts, negative ICP, profile."""
