"""Tests of ``groove_sc.model``."""
