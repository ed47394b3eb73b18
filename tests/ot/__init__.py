"""Tests of ``groove_sc.ot``."""
