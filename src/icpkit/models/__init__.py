"""Propensity models: preprocessing, fitting and tuning, the leakage check, evaluation and SHAP explanations."""
