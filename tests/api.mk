# tests/api.mk: see tests/Makefile.am
