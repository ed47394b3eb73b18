"""Tests of ``groove_sc.tl``."""
