"""Anonymisation: the column policy and the pure, vectorised functions that apply it."""
