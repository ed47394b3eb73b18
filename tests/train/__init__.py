"""Tests of ``groove_sc.train``."""
