"""Tests of ``groove_sc.datasets``."""
