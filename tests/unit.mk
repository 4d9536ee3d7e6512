# tests/unit.mk: see tests/Makefile.am
