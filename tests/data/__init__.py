"""Tests of ``groove_sc.data``."""
