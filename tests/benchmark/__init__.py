"""Tests of ``groove_sc.benchmark``."""
